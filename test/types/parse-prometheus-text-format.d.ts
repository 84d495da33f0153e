// Types for parse-prometheus-text-format (a devDependency; the package ships none): the shape
// its README documents, compatible with prom2json's output.
declare module 'parse-prometheus-text-format' {
  export interface PromSample {
    value?: string;
    labels?: Record<string, string>;
    timestamp_ms?: string;
    buckets?: Record<string, string>;
    quantiles?: Record<string, string>;
    count?: string;
    sum?: string;
  }
  export interface PromFamily {
    name: string;
    help: string;
    type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
    metrics: PromSample[];
  }
  /** Throws InvalidLineError on a line that is not text exposition format. */
  export default function parsePrometheusTextFormat(text: string): PromFamily[];
}
