#!/usr/bin/env bash
# Seed corpora for the fuzz targets, made from the project's own data: synthetic SA-1B files, the
# COCO_Tiny instances (trimmed to a few images), a tar shard, and RLE strings of real masks.
# Usage: fuzz/make_corpus.sh BUILD_BIN_DIR OUT_DIR   (BUILD_BIN_DIR holds a normal sam_data build)
set -euo pipefail
bin=$1
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${SAM_SHARED_DIR:-$root/../shared}
mkdir -p "$out"/{rle_string,sa1b_json,coco_json,tar_index}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin/sam_data" synth "$tmp/syn" --images 6 --size 48x40 --min-objects 1 --max-objects 5 --seed 1 >/dev/null
cp "$tmp"/syn/*.json "$out/sa1b_json/"
(cd "$tmp/syn" && tar -cf "$out/tar_index/ustar.tar" --format=ustar sa_1.json sa_2.jpg &&
  tar -cf "$out/tar_index/pax.tar" --format=pax sa_3.json && tar -cf "$out/tar_index/gnu.tar" --format=gnu sa_4.json)
# RLE strings: 4 bytes of size (h, w little-endian) then the counts string.
i=0
for f in "$tmp"/syn/sa_1.json "$tmp"/syn/sa_2.json; do
  python3 - "$f" "$out/rle_string" "$i" <<'PY'
import json, struct, sys
d = json.load(open(sys.argv[1]))
for k, a in enumerate(d["annotations"][:4]):
    h, w = a["segmentation"]["size"]
    open(f"{sys.argv[2]}/seed_{sys.argv[3]}_{k}", "wb").write(struct.pack("<HH", h, w) + a["segmentation"]["counts"].encode())
PY
  i=$((i + 1))
done
# COCO: the first 3 images of COCO_Tiny val with their annotations (polygons and crowd RLE).
python3 - "$shared/data/COCO_Tiny/annotations/instances_val2017.json" "$out/coco_json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
crowd = [a for a in d["annotations"] if a["iscrowd"]][:1]
ids = {d["images"][0]["id"], d["images"][1]["id"], crowd[0]["image_id"]}
d["images"] = [im for im in d["images"] if im["id"] in ids]
d["annotations"] = [a for a in d["annotations"] if a["image_id"] in ids][:12] + crowd
d["categories"] = d["categories"][:3]
json.dump(d, open(sys.argv[2] + "/coco_tiny_3.json", "w"))
PY
echo "corpora in $out"
