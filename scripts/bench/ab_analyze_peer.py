# The same analysis the way a data scientist would do it by hand: pandas reads the exposures and
# outcomes, takes the first exposure per unit, joins the outcomes within the window, reduces to
# per-arm sums, and gbstats runs the sequential test on them.
import time, sys
t = time.time()
import pandas as pd
from gbstats.models.statistics import SampleMeanStatistic
from gbstats.frequentist.tests import SequentialTwoSidedTTest, SequentialConfig
e = pd.read_json("exp.ndjson", lines=True)
o = pd.read_json("out.ndjson", lines=True)
e["ts"] = pd.to_datetime(e["ts"], unit="ms") if e["ts"].dtype != "datetime64[ns]" else e["ts"]
o["ts"] = pd.to_datetime(o["ts"], unit="ms") if o["ts"].dtype != "datetime64[ns]" else o["ts"]
first = e.sort_values("ts").groupby("unit_id", as_index=False).first()[["unit_id", "variant", "ts"]]
j = first.merge(o[o["name"] == "revenue"][["unit_id", "ts", "value"]], on="unit_id", how="left", suffixes=("", "_o"))
inw = (j["ts_o"] >= j["ts"]) & (j["ts_o"] < j["ts"] + pd.Timedelta(hours=72))
j["y"] = j["value"].where(inw, 0.0).fillna(0.0)
per_unit = j.groupby(["unit_id", "variant"], as_index=False)["y"].sum()
arms = per_unit.groupby("variant")["y"].agg(n="count", s="sum", ss=lambda x: (x * x).sum())
stat = lambda r: SampleMeanStatistic(n=int(r.n), sum=float(r.s), sum_squares=float(r.ss))
res = SequentialTwoSidedTTest(stat(arms.loc["control"]), stat(arms.loc["treatment"]), SequentialConfig()).compute_result()
print(f"lift {res.expected:+.4%} ci {res.ci} in {time.time() - t:.2f} s")
