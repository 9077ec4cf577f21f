"""Trains an Ultralytics YOLO model for a few epochs on a `gan-jax export`, to check that the real
consumer reads it (optional: needs `pip install ultralytics`, not a dependency, not run in CI).

  gan-jax export --workdir=runs/cgan_digits --out=/tmp/cls --num=200 --per_class --format=ultralytics-cls
  python benchmarks/yolo_check.py --data=/tmp/cls --task=classify --epochs=3
  gan-jax export --workdir=runs/cgan_digits --out=/tmp/det --num=300 --format=ultralytics-det
  python benchmarks/yolo_check.py --data=/tmp/det/data.yaml --task=detect --epochs=3

The model is built from its YAML (no pretrained weights are downloaded) and trained on the CPU;
prints one JSON object: the task, data, epochs, seconds and the validation scores Ultralytics
reports (top-1/top-5 accuracy, or box precision/recall/mAP).
"""
import argparse
import json
import time

MODELS = {"classify": "yolo11n-cls.yaml", "detect": "yolo11n.yaml"}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data", required=True, help="the export folder (classify) or its "
                      "data.yaml (detect)")
  parser.add_argument("--task", choices=sorted(MODELS), default="classify")
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--imgsz", type=int, default=None, help="default: 32 (classify), 256 "
                      "(detect)")
  parser.add_argument("--project", default="/tmp/yolo_check")
  args = parser.parse_args()
  from ultralytics import YOLO  # optional: only this script needs it
  imgsz = args.imgsz or (32 if args.task == "classify" else 256)
  model = YOLO(MODELS[args.task], task=args.task)
  start = time.time()
  model.train(data=args.data, epochs=args.epochs, imgsz=imgsz, device="cpu", workers=2,
              batch=64, plots=False, project=args.project, name=args.task, exist_ok=True,
              pretrained=False, amp=False, verbose=False)
  seconds = time.time() - start
  scores = model.val(data=args.data, imgsz=imgsz, device="cpu", plots=False, verbose=False,
                     project=args.project, name=args.task + "_val", exist_ok=True)
  print(json.dumps({"task": args.task, "data": args.data, "epochs": args.epochs, "imgsz": imgsz,
                    "seconds": round(seconds, 1),
                    "scores": {k: round(float(v), 4) for k, v in scores.results_dict.items()}}))


if __name__ == "__main__":
  main()
