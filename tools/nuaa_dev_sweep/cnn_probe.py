"""Exploration harness (dev only: train one session, score the other)."""
import argparse, time, numpy as np, cv2, torch, albumentations as A
from sklearn.metrics import roc_auc_score, roc_curve
from openfas.models import create_model
from openfas.losses.depth import pixelwise_loss
from openfas.data.transforms import RandomRelight, relight
p = argparse.ArgumentParser()
p.add_argument("npz"); p.add_argument("--scale", default="s1.5"); p.add_argument("--size", type=int, default=64)
p.add_argument("--model", default="pixelnet"); p.add_argument("--aug", default="geo_photo")
p.add_argument("--epochs", type=int, default=10); p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--folds", default="12,21"); p.add_argument("--norm", default="fixed")
p.add_argument("--seed", type=int, default=0); p.add_argument("--input", default="rgb"); p.add_argument("--map", type=int, default=16)
p.add_argument("--faceonly", action="store_true"); p.add_argument("--patch", type=int, default=0); p.add_argument("--width", type=int, default=32); p.add_argument("--wd", type=float, default=5e-5)
a = p.parse_args()
import torch.nn.functional as F
YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
NB = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
def transform(x):
    if a.input == "rgb": return x
    pl = F.conv2d(x, YCC[:, :, None, None])
    if a.input == "ycbcr": return pl
    radii = (1, 2) if a.input == "lbpbits2" else (1,)
    outs = []
    for r in radii:
        pad = F.pad(pl, (r, r, r, r), mode="replicate"); H, W = pl.shape[-2:]
        for dy, dx in NB:
            nb = pad[:, :, r + dy * r:r + dy * r + H, r + dx * r:r + dx * r + W]
            outs.append((nb >= pl).float() * 2 - 1)
    return torch.cat(outs, 1)
IN_CH = {"rgb": 3, "ycbcr": 3, "lbpbits": 24, "lbpbits2": 48}[a.input]
torch.set_num_threads(2)
d = np.load(a.npz); X = d[a.scale]; lab = d["label"]; ses = d["session"]
face_frac = {"s1.0": 1/1.0, "s1.5": 1/1.5, "s2.7": 1/2.7}[a.scale]
yy, xx = np.mgrid[:a.map, :a.map] + 0.5; c = a.map / 2; r = a.map * face_frac / 2
MASK = (((xx - c) / r) ** 2 + ((yy - c) / r) ** 2 <= 1).astype(np.float32)
geo = A.Compose([A.RandomResizedCrop(size=(a.size, a.size), scale=(0.7, 1.0), ratio=(0.9, 1.1)), A.HorizontalFlip(),
                 A.Affine(rotate=(-10, 10), border_mode=cv2.BORDER_REFLECT_101, p=0.3)])
photo = A.Compose([A.RandomBrightnessContrast(0.4, 0.4, p=0.8), A.RandomGamma((60, 160), p=0.5),
                   A.PlanckianJitter(mode="blackbody", temperature_limit=(3000, 15000), p=0.5),
                   A.HueSaturationValue(8, 30, 0, p=0.5), A.ToGray(p=0.1)])
degrade = A.Compose([A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 7))], p=0.3),
                     A.ImageCompression(quality_range=(30, 95), p=0.5), A.GaussNoise(std_range=(0.01, 0.05), p=0.3),
                     A.Downscale(scale_range=(0.5, 0.9), p=0.2)])
RELIGHT = A.Compose([RandomRelight()]); RELIGHT.set_random_seed(a.seed)
FACE = int(round(128 * face_frac)); OFF = (128 - FACE) // 2
pgeo = A.Compose([A.HorizontalFlip(), A.Affine(rotate=(-10, 10), scale=(0.9, 1.1), border_mode=cv2.BORDER_REFLECT_101, p=0.5)])
def face_only(img):
    """Everything outside the face's ellipse (the crop's central 1/scale) set to mid-grey: no border, hand, background."""
    h, w = img.shape[:2]; yy_, xx_ = np.mgrid[:h, :w] + 0.5; rr = h * face_frac / 2
    keep = (((xx_ - w / 2) / rr) ** 2 + ((yy_ - h / 2) / (rr * 1.15)) ** 2 <= 1)[..., None]
    return np.where(keep, img, np.uint8(128))
def prep(img, train):
    if a.faceonly: img = face_only(img)
    if a.patch:
        img = img[OFF:OFF + FACE, OFF:OFF + FACE]
        if train:
            img = pgeo(image=img)["image"]
            y0, x0 = np.random.randint(0, FACE - a.patch + 1, 2)
            img = img[y0:y0 + a.patch, x0:x0 + a.patch]
            if "photo" in a.aug: img = photo(image=img)["image"]
    elif train:
        img = geo(image=img)["image"]
        if "photo" in a.aug: img = photo(image=img)["image"]
        if "degrade" in a.aug: img = degrade(image=img)["image"]
        if "relight" in a.aug: img = RELIGHT(image=img)["image"]
    elif not a.patch:
        img = cv2.resize(img, (a.size, a.size), interpolation=cv2.INTER_AREA)
    x = img[:, :, ::-1].astype(np.float32) / 255.0
    if a.norm == "inst":
        x = (x - x.mean()) / (x.std() + 1e-3)
    else:
        x = (x - 0.5) / 0.5
    return x.transpose(2, 0, 1).copy()
def run(tr, dv):
    torch.manual_seed(a.seed); np.random.seed(a.seed); rng = np.random.default_rng(a.seed)
    kw = dict(map_size=a.map, in_channels=IN_CH)
    if a.model == "pixelnet": kw["width"] = a.width
    m = create_model(a.model, **kw)
    opt = torch.optim.Adam(m.parameters(), lr=a.lr, weight_decay=a.wd)
    idx = np.where(ses == tr)[0]; dvi = np.where(ses == dv)[0]
    steps = a.epochs * (len(idx) // 16); sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    Xd = torch.tensor(np.stack([prep(X[i], False) for i in dvi]))
    # the same dev crops with the light's statistics equalised (a dev-only shortcut check): every face grey-balanced
    # at mean 128 with sensor noise of sd 3, so exposure, white balance and noise level carry no label
    Xm = torch.tensor(np.stack([prep(relight(X[i], 128.0, noise_std=3.0, rng=np.random.default_rng(int(i))), False)
                                for i in dvi]))
    Xf = torch.tensor(np.stack([prep(face_only(X[i]), False) for i in dvi]))  # the face alone (context check)
    res = []
    for ep in range(a.epochs):
        m.train(); perm = rng.permutation(idx)
        for b in range(len(perm) // 16):
            bi = perm[b*16:(b+1)*16]
            x = torch.tensor(np.stack([prep(X[i], True) for i in bi]))
            t = torch.tensor(np.stack([(np.ones_like(MASK) if a.patch else MASK) * lab[i] for i in bi]))
            out = m(transform(x)); loss = pixelwise_loss(out.float(), t)["loss"]
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        m.eval()
        with torch.no_grad():
            s = torch.cat([m(transform(Xd[k:k+64])).flatten(1).mean(1) for k in range(0, len(Xd), 64)]).numpy()
            sm = torch.cat([m(transform(Xm[k:k+64])).flatten(1).mean(1) for k in range(0, len(Xm), 64)]).numpy()
            sf = torch.cat([m(transform(Xf[k:k+64])).flatten(1).mean(1) for k in range(0, len(Xf), 64)]).numpy()
        y = lab[dvi]; auc = roc_auc_score(y, s); fpr, tpr, _ = roc_curve(y, s); eer = fpr[np.argmin(np.abs(fpr - (1 - tpr)))]
        res.append((auc, eer, roc_auc_score(y, sm), roc_auc_score(y, sf)))
    return res
t0 = time.time(); out = {}
for f in a.folds.split(","):
    out[f] = run(int(f[0]), int(f[1]))
print(vars(a), f"{time.time()-t0:.0f}s")
for f, r in out.items():
    print(f"  fold {f}: AUC/epoch " + " ".join(f"{x[0]:.3f}" for x in r) + f" | last EER {r[-1][1]:.3f}")
    print(f"  fold {f}: light-equalised dev AUC/epoch " + " ".join(f"{x[2]:.3f}" for x in r))
    print(f"  fold {f}: face-only dev AUC/epoch " + " ".join(f"{x[3]:.3f}" for x in r))
print("  mean last AUC %.4f  mean best AUC %.4f  mean last light-equalised AUC %.4f  face-only %.4f" % (
    np.mean([r[-1][0] for r in out.values()]), np.mean([max(x[0] for x in r) for r in out.values()]),
    np.mean([r[-1][2] for r in out.values()]), np.mean([r[-1][3] for r in out.values()])), flush=True)
