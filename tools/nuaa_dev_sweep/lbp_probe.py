import numpy as np, cv2
from sklearn.svm import LinearSVC
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
import sys
d = np.load(sys.argv[1])
lab, ses = d["label"], d["session"]
def lbp(g, r=1):
    g = g.astype(np.int16); h, w = g.shape
    c = g[r:h-r, r:w-r]; code = np.zeros_like(c, dtype=np.uint8)
    offs = [(-r,-r),(-r,0),(-r,r),(0,r),(r,r),(r,0),(r,-r),(0,-r)]
    for k,(dy,dx) in enumerate(offs):
        n = g[r+dy:h-r+dy, r+dx:w-r+dx]
        code |= ((n >= c).astype(np.uint8) << k)
    return code
# uniform mapping
def trans(x): b=[(x>>i)&1 for i in range(8)]; return sum(b[i]!=b[(i+1)%8] for i in range(8))
U = np.array([trans(x) for x in range(256)]); uni = np.full(256, 58); j=0
for x in range(256):
    if U[x] <= 2: uni[x]=j; j+=1
def feat(img, size, grid):
    g = cv2.cvtColor(cv2.resize(img, (size,size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    fs=[]
    for r in (1,2):
        c = uni[lbp(g, r)]; H,W=c.shape
        fs.append(np.bincount(c.ravel(), minlength=59)/c.size)
        for i in range(grid):
            for k in range(grid):
                blk = c[i*H//grid:(i+1)*H//grid, k*W//grid:(k+1)*W//grid]
                fs.append(np.bincount(blk.ravel(), minlength=59)/blk.size)
    return np.concatenate(fs)
for key in ("s1.0","s1.5","s2.7"):
  for size in (64,128):
    X = np.stack([feat(im, size, 3) for im in d[key]])
    for tr, dv in ((1,2),(2,1)):
        a, b = ses==tr, ses==dv
        sc = StandardScaler().fit(X[a]); clf = LogisticRegression(C=0.1, max_iter=2000).fit(sc.transform(X[a]), lab[a])
        print(key, size, f"train s{tr} -> dev s{dv}", "AUC %.3f" % roc_auc_score(lab[b], clf.decision_function(sc.transform(X[b]))), flush=True)
