#!/usr/bin/env bash
# The fairness raw part's outcome join three ways (every outcome of the model grouped; only those
# linked to the range's inferences; those stamped at most an hour before their inference), each
# three times with `vigil sql`, over the last 10 minutes of `churn` inferences of a store with
# outcomes (docs/benchmarks.md, "Stores with outcomes"). Usage: outcome_join.sh /path/to/chdb/data
set -euo pipefail
S=${1:?chDB data directory}
BIN=${BIN:-vigil}
V="$BIN --store chdb://$S sql"
END=$($V "SELECT toUInt32(max(ts)) FROM vigil.inference_events" --output TSV); FROM=$((END-600))
SERVED="SELECT model, event_id, toUInt32(ts) AS i_ts FROM vigil.inference_events FINAL WHERE model = 'churn' AND ts >= toDateTime($FROM) AND ts <= toDateTime($END)"
IDS="SELECT event_id FROM vigil.inference_events WHERE model = 'churn' AND ts >= toDateTime($FROM) AND ts <= toDateTime($END)"
OLD="SELECT count(), sum(has_out), sum(pos) FROM ($SERVED) AS s ANY LEFT JOIN (SELECT model, inference_id AS event_id, toUInt64(1) AS has_out, toUInt64(max(value) > 0) AS pos FROM vigil.outcome_events FINAL WHERE model = 'churn' AND inference_id != '' GROUP BY model, inference_id) AS r USING (model, event_id)"
IN="SELECT count(), sum(has_out), sum(pos) FROM ($SERVED) AS s ANY LEFT JOIN (SELECT model, inference_id AS event_id, toUInt64(1) AS has_out, toUInt64(max(value) > 0) AS pos FROM vigil.outcome_events FINAL WHERE model = 'churn' AND inference_id != '' AND inference_id IN ($IDS) GROUP BY model, inference_id) AS r USING (model, event_id)"
LEAD=$((FROM-3600))
WIN="SELECT count(), sum(has_out), sum(pos) FROM (SELECT i_ts, toUInt64(arrayExists((t, x) -> t + 3600 >= x, o_ts, arrayResize([i_ts], length(o_ts), i_ts))) AS has_out, toUInt64(arrayExists((t, v, x) -> t + 3600 >= x AND v > 0, o_ts, o_vals, arrayResize([i_ts], length(o_ts), i_ts))) AS pos FROM ($SERVED) AS s ANY LEFT JOIN (SELECT model, inference_id AS event_id, CAST(groupArray(toUInt32(ts)) AS Array(UInt32)) AS o_ts, CAST(groupArray(value) AS Array(Float64)) AS o_vals FROM vigil.outcome_events FINAL WHERE inference_id != '' AND ts >= toDateTime($LEAD) AND inference_id IN ($IDS) GROUP BY model, inference_id) AS r USING (model, event_id))"
for n in OLD IN WIN; do for i in 1 2 3; do echo -n "$n "; /usr/bin/time -f "%e s" $V "${!n}" --output TSV 2>&1 | tr '\n' ' '; echo; done; done
