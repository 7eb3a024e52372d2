"""TensorFlow side of `cargo xtask check-eval`.

Usage:
    check_eval.py photos --out DIR --count N
    check_eval.py tf --module DIR --photos DIR --out TF.json
    check_eval.py compare --tf TF.json --records RECORDS.jsonl --report REPORT.json

`photos` makes N photos from the shipped ones (fixtures/preprocess) with TensorFlow's own
image ops, seeded: a random crop (30-100 % of each side), a left-right flip half the time, a
resize to 40-700 px a side, saved as PNG or JPEG (quality 60-98).

`tf` classifies every photo with the module in TensorFlow (hub.Module, the
`image_classification` signature) after TF's own evaluation preprocessing
(preprocess.py), writes each photo's logits' top 20, and a ground-truth file for the
module: a third of the photos labelled with TF's top-1 class, a third with its third class,
a third with a random class; with TF's top-1/top-5 counts against it.

`compare` checks amoeba eval's records against that: per photo the same top-5 in the same
order (a swap only where TF's own logits tie within 1e-4), and the report's counts equal to
TF's. Exits 1 on any difference.
"""

import argparse
import glob
import json
import os
import sys

import numpy as np

SHIPPED = ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg"]
TIE = 1e-4


def photos_cmd(out, count):
    import tensorflow as tf
    root = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "preprocess")
    rng = np.random.default_rng(19)
    sources = [tf.io.decode_image(open(os.path.join(root, n), "rb").read(), channels=3,
                                  expand_animations=False) for n in SHIPPED]
    os.makedirs(out, exist_ok=True)
    for i in range(count):
        img = sources[i % len(sources)]
        h, w = int(img.shape[0]), int(img.shape[1])
        ch, cw = int(h * rng.uniform(0.3, 1.0)), int(w * rng.uniform(0.3, 1.0))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = img[y:y + ch, x:x + cw]
        if rng.random() < 0.5:
            crop = tf.image.flip_left_right(crop)
        size = [int(rng.integers(40, 701)), int(rng.integers(40, 701))]
        crop = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(crop, size)), 0, 255), tf.uint8)
        if rng.random() < 0.5:
            name = f"photo{i:04d}.png"
            data = tf.io.encode_png(crop)
        else:
            name = f"photo{i:04d}.jpg"
            data = tf.io.encode_jpeg(crop, quality=int(rng.integers(60, 99)))
        with open(os.path.join(out, name), "wb") as f:
            f.write(data.numpy())


def tf_cmd(module, photos, out, labels_out):
    import tensorflow as tf
    import tensorflow_hub as hub
    from preprocess import preprocess_files
    v1 = tf.compat.v1
    paths = sorted(glob.glob(os.path.join(photos, "*.png")) + glob.glob(os.path.join(photos, "*.jpg")))
    rng = np.random.default_rng(23)
    with tf.Graph().as_default():
        m = hub.Module(module)
        size = m.get_input_info_dict("image_classification")["images"].get_shape()[1]
        x = v1.placeholder(tf.float32, [None, size, size, 3])
        logits = m(x, signature="image_classification")
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            results, top1, top5, labels = {}, 0, 0, []
            for start in range(0, len(paths), 16):
                chunk = paths[start:start + 16]
                _, images = preprocess_files(chunk, size, size)
                for p, l in zip(chunk, sess.run(logits, {x: images})):
                    order = np.argsort(-l, kind="stable")[:20]
                    results[p] = {"top20": [[int(i), float(l[i])] for i in order]}
                    k = len(labels)
                    # Class 0 of a 1001-class model (background) is never a photo's class;
                    # 1000- and 1001-class files are 1-based, other models' 0-based.
                    n = len(l)
                    classes = [int(i) for i in order if not (n == 1001 and i == 0)]
                    logit = classes[0] if k % 3 == 0 else classes[2] if k % 3 == 1 else \
                        int(rng.integers(1 if n == 1001 else 0, n))
                    c = logit + 1 if n == 1000 else logit
                    top1 += int(order[0] == logit)
                    top5 += int(logit in order[:5])
                    labels.append(f"{os.path.basename(p)} {c}\n")
    with open(labels_out, "w") as f:
        f.writelines(labels)
    with open(out, "w") as f:
        json.dump({"photos": results, "top1": top1, "top5": top5, "images": len(paths)}, f)


def compare_cmd(tf_path, records_path, report_path):
    tf_results = json.load(open(tf_path))
    report = json.load(open(report_path))
    records = [json.loads(line) for line in open(records_path)]
    problems = []
    if len(records) != len(tf_results["photos"]):
        problems.append(f"{len(records)} records for {len(tf_results['photos'])} photos")
    for r in records:
        theirs = tf_results["photos"].get(r["image"])
        if theirs is None or "error" in r:
            problems.append(f"{r['image']}: {r.get('error', 'not classified by TF')}")
            continue
        logit = dict(theirs["top20"])
        ours = [t["index"] for t in r["top"]]
        want = [i for i, _ in theirs["top20"][:5]]
        for rank, (o, w) in enumerate(zip(ours, want)):
            if o != w and (o not in logit or abs(logit[o] - logit[w]) >= TIE):
                problems.append(f"{r['image']}: rank {rank + 1}: ours {ours}, TF {want}")
                break
    for key in ("top1", "top5", "images"):
        if report["tally"][key] != tf_results[key]:
            problems.append(f"report {key} {report['tally'][key]}, TF {tf_results[key]}")
    for p in problems[:20]:
        print(f"check-eval: {p}")
    print(f"check-eval: {len(records)} photos, {len(problems)} differences; "
          f"top-1 {report['tally']['top1']} (TF {tf_results['top1']}), "
          f"top-5 {report['tally']['top5']} (TF {tf_results['top5']})")
    sys.exit(1 if problems else 0)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("photos")
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, required=True)
    p = sub.add_parser("tf")
    p.add_argument("--module", required=True)
    p.add_argument("--photos", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--labels-out", required=True)
    p = sub.add_parser("compare")
    p.add_argument("--tf", required=True)
    p.add_argument("--records", required=True)
    p.add_argument("--report", required=True)
    a = ap.parse_args()
    if a.cmd == "photos":
        photos_cmd(a.out, a.count)
    elif a.cmd == "tf":
        tf_cmd(a.module, a.photos, a.out, a.labels_out)
    else:
        compare_cmd(a.tf, a.records, a.report)


if __name__ == "__main__":
    main()
