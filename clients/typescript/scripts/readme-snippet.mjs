// Prints the first ```ts block after the marker comment in a README, so check.sh
// type-checks exactly what the README shows. Its lines keep their README line
// numbers (the lines before the block are blank), so a compiler's "file(74,5)" is
// README line 74. Fails when the marker or the block is missing, or the block is
// not closed.
//
//   node scripts/readme-snippet.mjs README.md > snippet.ts
import { readFileSync } from "node:fs";

const MARKER = "<!-- check.sh type-checks the next ts block";

const [file] = process.argv.slice(2);
if (!file) {
  console.error("usage: node scripts/readme-snippet.mjs README.md");
  process.exit(2);
}
const lines = readFileSync(file, "utf8").split("\n");
const marker = lines.findIndex((l) => l.startsWith(MARKER));
if (marker < 0) {
  console.error(`${file}: no line starting with ${JSON.stringify(MARKER)}`);
  process.exit(1);
}
const open = lines.findIndex((l, i) => i > marker && /^```(ts|typescript)\s*$/.test(l));
if (open < 0) {
  console.error(`${file}:${marker + 1}: no \`\`\`ts block after the marker`);
  process.exit(1);
}
const close = lines.findIndex((l, i) => i > open && /^```\s*$/.test(l));
if (close < 0) {
  console.error(`${file}:${open + 1}: the \`\`\`ts block is not closed`);
  process.exit(1);
}
const header = [`// Extracted from ${file}, lines ${open + 2}-${close}; line numbers are the README's.`];
const padding = Array.from({ length: open }, () => "");
process.stdout.write([...header, ...padding, ...lines.slice(open + 1, close)].join("\n") + "\n");
