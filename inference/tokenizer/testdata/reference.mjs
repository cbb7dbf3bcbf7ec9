// Encodes texts with Hugging Face's pure-JS tokenizers, the reference the
// Go tokenizer is compared with (reference_test.go):
//   node reference.mjs TOKENIZERS_MJS TOKENIZER_JSON TOKENIZER_CONFIG_JSON < texts.jsonl
// Each input line is a JSON string; each output line is {"ids": [...],
// "mask": [...]} for the same text, special tokens added, not truncated.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { createInterface } from "node:readline";

const [modulePath, tokenizerPath, configPath] = process.argv.slice(2);
const { Tokenizer } = await import(pathToFileURL(modulePath).href);
const tokenizer = new Tokenizer(
  JSON.parse(readFileSync(tokenizerPath, "utf8")),
  JSON.parse(readFileSync(configPath, "utf8")),
);
const out = [];
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (line === "") continue;
  const enc = tokenizer.encode(JSON.parse(line));
  out.push(JSON.stringify({ ids: enc.ids, mask: enc.attention_mask }));
}
process.stdout.write(out.join("\n") + "\n");
