#!/usr/bin/env node
// Prints golden assignment data computed by the real GrowthBook JavaScript SDK, used by
// experimenter/tests/golden.rs to check that vigil assigns exactly as GrowthBook does,
// including for non-ASCII unit ids and seeds (the SDK hashes UTF-16 code units).
//
// Regenerate (node >= 18):
//   cd "$(mktemp -d)" && npm pack @growthbook/growthbook && tar xzf growthbook-growthbook-*.tgz
//   node /path/to/experimenter/scripts/growthbook-golden.js "$PWD/package" \
//     > /path/to/experimenter/tests/data/growthbook-golden.json
"use strict";
const path = require("path");

const pkgDir = process.argv[2];
if (!pkgDir) {
  console.error("usage: growthbook-golden.js <unpacked @growthbook/growthbook package dir>");
  process.exit(2);
}
const pkg = require(path.join(pkgDir, "package.json"));
const util = require(path.join(pkgDir, "dist/cjs/util.js"));
// The CommonJS entry point needs the SDK's npm dependencies; the self-contained browser bundle does not.
const fs = require("fs");
const vm = require("vm");
const bundle = fs.readFileSync(path.join(pkgDir, "dist/bundles/index.js"), "utf8");
const { GrowthBook } = vm.runInThisContext(bundle + "\n;growthbook;");

const units = [
  "", "1", "user-42", "alice@example.com",
  "é", "e\u0301", "café", "ñandú-42", "Ωmega", "\u00ff", "\u0100", "\u0101\u0102",
  "日本語ユーザー", "用户123", "사용자", "Пользователь", "مستخدم", "עברית",
  "😀", "👩‍💻", "🇩🇪-user", "a😀b", "\uD83D\uDE00\uD83D\uDE00", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
];
const seeds = ["", "seed", "ranker-v2", "实验", "éxp", "🧪"];

const hash = [];
for (const seed of seeds) {
  for (const unit of units) {
    for (const version of [1, 2]) {
      hash.push([seed, unit, version, util.hash(seed, unit, version)]);
    }
  }
}

const inNamespace = [];
for (const unit of units) {
  for (const ns of [["ns1", 0, 0.5], ["名前空間", 0.3, 0.9], ["🧪", 0, 1]]) {
    inNamespace.push([unit, ns, util.inNamespace(unit, ns)]);
  }
}

const bucketRanges = [];
for (const [n, coverage, weights] of [
  [2, 1, [0.5, 0.5]], [3, 0.7, [0.2, 0.3, 0.5]], [3, 1, null], [5, 0.33, null],
  [2, 0.999, [0.1, 0.9]], [3, 1, [0.333, 0.333, 0.333]], [2, 1, [0.995, 0.0]],
]) {
  bucketRanges.push([n, coverage, weights, util.getBucketRanges(n, coverage, weights || undefined)]);
}

// Whole-experiment runs: unit x experiment -> GrowthBook's result.
const experiments = [
  { key: "exp-a", variations: [0, 1], hashVersion: 2 },
  { key: "exp-b", seed: "sëed-β", variations: [0, 1, 2], weights: [0.2, 0.3, 0.5], coverage: 0.6, hashVersion: 2 },
  { key: "exp-c", variations: [0, 1], coverage: 0.5, hashVersion: 1 },
  { key: "exp-d", variations: [0, 1], hashVersion: 2, namespace: ["pricing", 0.2, 0.7] },
  { key: "exp-e", variations: [0, 1], hashVersion: 2, status: "stopped" },
];
const moreUnits = units.concat(Array.from({ length: 40 }, (_, i) => `u${i * 7919}`));
const run = [];
for (const exp of experiments) {
  for (const unit of moreUnits) {
    if (unit === "") continue;
    const gb = new GrowthBook({ attributes: { id: unit } });
    const r = gb.run(exp);
    run.push([exp, unit, { inExperiment: r.inExperiment, variationId: r.variationId, bucket: r.bucket === undefined ? null : r.bucket }]);
  }
}

process.stdout.write(JSON.stringify({
  generator: "experimenter/scripts/growthbook-golden.js",
  sdk: `${pkg.name}@${pkg.version}`,
  hash, inNamespace, bucketRanges, run,
}, null, 1) + "\n");
