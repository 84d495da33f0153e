// A node:test reporter that writes nothing but the list of test files with a failing test,
// one path a line (used by scripts/test.js to re-run those files once).
export default async function* failedFiles(source) {
  const files = new Set();
  for await (const event of source) {
    if (event.type === 'test:fail' && event.data.file && event.data.details?.type !== 'suite') files.add(event.data.file);
  }
  yield [...files].map((f) => `${f}\n`).join('');
}
