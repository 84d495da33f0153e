#!/usr/bin/env node
// The installed `tstack` command: the compiled CLI lives in dist/ (npm run build).
import { main } from '../dist/src/cli/main.js';

await main();
