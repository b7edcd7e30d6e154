"""Dev-only LBP probe: train one training session, score the other (never session 3).
Usage: python lbp_probe.py crops.npz grey:64:3:1,2 ycc:64:3:1,2 ..."""
import sys, numpy as np, cv2, time
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.preprocessing import StandardScaler
d = np.load(sys.argv[1])  # written by extract_crops.py
lab, ses = d["label"], d["session"]
keep = ses < 3
X0 = d["s1.5"][keep]; lab = lab[keep]; ses = ses[keep]
def lbp(g, r=1):
    g = g.astype(np.int16); h, w = g.shape
    c = g[r:h-r, r:w-r]; code = np.zeros_like(c, dtype=np.uint8)
    offs = [(-r,-r),(-r,0),(-r,r),(0,r),(r,r),(r,0),(r,-r),(0,-r)]
    for k,(dy,dx) in enumerate(offs):
        n = g[r+dy:h-r+dy, r+dx:w-r+dx]
        code |= ((n >= c).astype(np.uint8) << k)
    return code
def trans(x): b=[(x>>i)&1 for i in range(8)]; return sum(b[i]!=b[(i+1)%8] for i in range(8))
U = np.array([trans(x) for x in range(256)]); uni = np.full(256, 58); j=0
for x in range(256):
    if U[x] <= 2: uni[x]=j; j+=1
def hists(g, grid, radii):
    fs=[]
    for r in radii:
        c = uni[lbp(g, r)]; H,W=c.shape
        fs.append(np.bincount(c.ravel(), minlength=59)/c.size)
        for i in range(grid):
            for k in range(grid):
                blk = c[i*H//grid:(i+1)*H//grid, k*W//grid:(k+1)*W//grid]
                fs.append(np.bincount(blk.ravel(), minlength=59)/blk.size)
    return np.concatenate(fs)
def chans(img, space):
    if space == "grey": return [cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)]
    if space == "ycc": return list(cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2YCrCb)))
    if space == "hsv": return list(cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV)))
    if space == "ycc+hsv": return chans(img, "ycc") + chans(img, "hsv")
    if space == "rgb": return list(cv2.split(img))
def feat(img, size, grid, space, radii):
    im = cv2.resize(img, (size,size), interpolation=cv2.INTER_AREA) if size != img.shape[0] else img
    return np.concatenate([hists(c, grid, radii) for c in chans(im, space)])
def eer(y, s):
    f, t, _ = roc_curve(y, s); i = np.argmin(np.abs(f - (1 - t))); return (f[i] + 1 - t[i]) / 2
for spec in sys.argv[2:]:  # colour:size:grid:radii, e.g. ycc:64:3:1,2
    space, size, grid, radii = spec.split(":")
    size, grid, radii = int(size), int(grid), tuple(int(r) for r in radii.split(","))
    t0 = time.time()
    X = np.stack([feat(im, size, grid, space, radii) for im in X0])
    for clfname in ("lr", "svm"):
        res = []
        for tr, dv in ((1,2),(2,1)):
            a, b = ses==tr, ses==dv
            sc = StandardScaler().fit(X[a])
            clf = LogisticRegression(C=0.1, max_iter=3000) if clfname == "lr" else SVC(C=1.0, kernel="rbf", gamma="scale")
            clf.fit(sc.transform(X[a]), lab[a]); s = clf.decision_function(sc.transform(X[b]))
            res.append((roc_auc_score(lab[b], s), eer(lab[b], s)))
        print(f"{spec:22s} {clfname:3s} dim {X.shape[1]:5d} AUC 12:{res[0][0]:.3f} 21:{res[1][0]:.3f} mean {np.mean([r[0] for r in res]):.4f} | EER {res[0][1]:.3f} {res[1][1]:.3f} ({time.time()-t0:.0f}s)", flush=True)
