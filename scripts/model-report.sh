#!/usr/bin/env bash
# model-report.sh: the default model's cross-domain checks. It trains the
# same recipe on one source at a time (SST-2 phrases only; IMDB reviews
# only) and scores each model, and the committed default, on SST-2 dev
# (sentences) and on the IMDB reviews every model held out (documents),
# with accuracy and expected calibration error. Needs ../shared.
set -euo pipefail
shared=${SHARED:-../shared}
sentctl=${SENTCTL:-bin/sentctl}
out=bin/model-report
mkdir -p "$out"
sst="$shared/data/sst2/train.tsv"
imdb="$shared/data/imdb/train.tsv.gz"
dev="$shared/data/sst2/dev.tsv"
recipe=(--progress never --norm sqrt --lr 0.3 --epochs 8 --nb-alpha 1 --min-count 3 --bits 21 --lexicon vader --balance-classes)

# The IMDB-only model holds out the same 20% as the default, so no model
# below has seen the reviews it is scored on.
"$sentctl" train "${recipe[@]}" --name sst2-only --data "$sst" --out "$out/sst2-only.sapm" >/dev/null
"$sentctl" train "${recipe[@]}" --name imdb-only --data "$imdb,holdout=0.2" --out "$out/imdb-only.sapm" >/dev/null

score() { # model-flag data: "accuracy ece"
	"$sentctl" eval --progress never "$@" | awk '/^accuracy:/ {a=$2} /^ece:/ {e=$2} END {printf "%s  %s", a, e}'
}
printf '%-28s %-26s %-26s\n' "trained on" "SST-2 dev (sentences)" "IMDB held out (reviews)"
printf '%-28s %-26s %-26s\n' "" "accuracy  ece" "accuracy  ece"
for m in "SST-2 only=$out/sst2-only.sapm" "IMDB only=$out/imdb-only.sapm" "both (the default)="; do
	name=${m%%=*} path=${m#*=}
	flag=()
	[ -n "$path" ] && flag=(--model "$path")
	printf '%-28s %-26s %-26s\n' "$name" "$(score "${flag[@]}" --data "$dev")" "$(score "${flag[@]}" --data "$imdb,holdout=0.2")"
done
