"""Issue 27's eight changes by hand (and variants of them): each applied to a copy of the tree, then the tests of
the changed function; killed = a test failed. Run: .venv/bin/python results/mutation/by_hand.py (output: by_hand.txt)."""
import shutil, subprocess, sys, time
from pathlib import Path

SRC = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]  # the repository
M, C, L, V = "colorgan/measures/metrics.py", "colorgan/method/color.py", "colorgan/method/losses.py", "colorgan/experiments/verdicts.py"
MT = ["tests/test_metrics.py", "tests/test_conventions.py"]
MUTANTS = [
    ("SSIM Gaussian width 1.5 -> 1.0", M, "kernel_sigma=1.5", "kernel_sigma=1.0", MT),
    ("SSIM Gaussian width 1.5 -> 2.0", M, "kernel_sigma=1.5", "kernel_sigma=2.0", MT),
    ("colourfulness mean weight 0.3 -> 0.4", M, "return std + 0.3 * mean", "return std + 0.4 * mean", MT),
    ("colourfulness opponent yb = (R+B)/2 - G", M, "(0.5 * (r + g) - b)", "(0.5 * (r + b) - g)", MT),
    ("colourfulness opponent rg = R - B", M, "rg, yb = (r - g)", "rg, yb = (r - b)", MT),
    ("verdict: supported needs low > 0.05", V, "if low > 0 and effect >= margin:", "if low > 0.05 and effect >= margin:", ["tests/test_verdicts.py"]),
    ("verdict: contradicted needs high < -0.05", V, "if high < 0 and effect <= -margin:", "if high < -0.05 and effect <= -margin:", ["tests/test_verdicts.py"]),
    ("verdict: supported at low > -0.05", V, "if low > 0 and effect >= margin:", "if low > -0.05 and effect >= margin:", ["tests/test_verdicts.py"]),
    ("diversity: L1 norm of ab", M, ".norm(dim=1).mean(dim=(1, 2))", ".norm(p=1, dim=1).mean(dim=(1, 2))", MT),
    ("diversity: squared distance", M, ".norm(dim=1).mean(dim=(1, 2))", ".pow(2).sum(dim=1).mean(dim=(1, 2))", MT),
    ("summary drops an image per method", M, '        row = {"method": method, "num_images": len(group)}',
     '        group = group.iloc[1:]\n        row = {"method": method, "num_images": len(group)}', MT),
    ("study table: seed means drop an image", "colorgan/experiments/aggregate.py", 'per_seed = group.groupby("seed")[metric].mean()',
     'per_seed = group.iloc[1:].groupby("seed")[metric].mean()', ["tests/test_study.py"]),
    ("gradient penalty at the fakes", L, "mixed = (u * ab_real + (1 - u) * ab_fake.detach())", "mixed = (ab_fake.detach() + 0 * u)", ["tests/test_losses.py"]),
    ("gradient penalty at the reals", L, "mixed = (u * ab_real + (1 - u) * ab_fake.detach())", "mixed = (ab_real + 0 * u)", ["tests/test_losses.py"]),
    ("gradient penalty weights swapped", L, "mixed = (u * ab_real + (1 - u) * ab_fake.detach())", "mixed = ((1 - u) * ab_real + u * ab_fake.detach())", ["tests/test_losses.py"]),
]
work = Path("/tmp/hand-mutants")
results = []
for name, path, old, new, tests in MUTANTS:
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(SRC, work, ignore=shutil.ignore_patterns(".venv", ".git", "results", "mutants", "__pycache__"), symlinks=True)
    shutil.copytree(SRC / "results" / "study", work / "results" / "study")
    target = work / path
    text = target.read_text()
    assert text.count(old) == 1, (name, text.count(old))
    target.write_text(text.replace(old, new))
    start = time.time()
    done = subprocess.run([str(SRC / ".venv/bin/python"), "-m", "pytest", "-x", "-q", "-m", "not slow", "-p", "no:cacheprovider", *tests],
                          cwd=work, capture_output=True, text=True)
    failed = [l for l in done.stdout.splitlines() if l.startswith("FAILED")]
    verdict = "KILLED" if done.returncode == 1 else "SURVIVED" if done.returncode == 0 else f"rc {done.returncode}"
    results.append((name, verdict, failed[:1], round(time.time() - start)))
    print(f"{verdict:9s} {name} ({results[-1][3]} s) {failed[:1]}", flush=True)
print(sum(r[1] == "KILLED" for r in results), "of", len(results), "killed")
