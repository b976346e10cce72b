import assert from "node:assert/strict";
import { parseCpuQuantity, parseMemoryQuantity } from "../src/config/quantity.ts";

Deno.test("parseMemoryQuantity() reads plain numbers as bytes", () => {
  assert.equal(parseMemoryQuantity("1024"), 1024);
  assert.equal(parseMemoryQuantity(1024), 1024);
  assert.equal(parseMemoryQuantity("0"), 0);
  assert.equal(parseMemoryQuantity("+5"), 5);
});

Deno.test("parseMemoryQuantity() reads binary units", () => {
  assert.equal(parseMemoryQuantity("1Ki"), 1024);
  assert.equal(parseMemoryQuantity("512Mi"), 512 * 2 ** 20);
  assert.equal(parseMemoryQuantity("2Gi"), 2 * 2 ** 30);
  assert.equal(parseMemoryQuantity("1Ti"), 2 ** 40);
  assert.equal(parseMemoryQuantity("1Pi"), 2 ** 50);
  assert.equal(parseMemoryQuantity("1Ei"), 2 ** 60);
});

Deno.test("parseMemoryQuantity() reads decimal units", () => {
  assert.equal(parseMemoryQuantity("1k"), 1e3);
  assert.equal(parseMemoryQuantity("500M"), 5e8);
  assert.equal(parseMemoryQuantity("1G"), 1e9);
  assert.equal(parseMemoryQuantity("1T"), 1e12);
  assert.equal(parseMemoryQuantity("1P"), 1e15);
  assert.equal(parseMemoryQuantity("1E"), 1e18);
});

Deno.test("parseMemoryQuantity() reads decimals and exponents exactly", () => {
  assert.equal(parseMemoryQuantity("1.5Gi"), 1.5 * 2 ** 30);
  assert.equal(parseMemoryQuantity(".5Ki"), 512);
  assert.equal(parseMemoryQuantity("5.Ki"), 5120);
  assert.equal(parseMemoryQuantity("0.1k"), 100);
  assert.equal(parseMemoryQuantity("1.1G"), 1_100_000_000);
  assert.equal(parseMemoryQuantity("1e9"), 1e9);
  assert.equal(parseMemoryQuantity("1E3"), 1000);
  assert.equal(parseMemoryQuantity("12e-1"), 2);
  assert.equal(parseMemoryQuantity(1e9), 1e9);
});

Deno.test("parseMemoryQuantity() rounds fractions of a byte up", () => {
  assert.equal(parseMemoryQuantity("1.5"), 2);
  assert.equal(parseMemoryQuantity("0.1Ki"), 103);
  assert.equal(parseMemoryQuantity(0.5), 1);
});

Deno.test("parseMemoryQuantity() refuses what is not a memory quantity", () => {
  const cases: [string | number, RegExp][] = [
    ["", /Invalid memory quantity "": expected a number/],
    ["abc", /Invalid memory quantity "abc": expected a number/],
    ["Gi", /expected a number with an optional unit/],
    ["1GB", /Invalid memory quantity "1GB": unknown unit "GB", use one of Ki, Mi, Gi/],
    ["1gi", /unknown unit "gi"/],
    ["1 Gi", /unknown unit "Gi", use one of .* without spaces/],
    ["1e", /unknown unit "e"/],
    ["-1Gi", /Invalid memory quantity "-1Gi": must not be negative/],
    ["500m", /"m" means a fraction of a byte; for megabytes write "500Mi" or "500M"/],
    ["1e400", /Invalid memory quantity "1e400": too large/],
    [-1, /Invalid memory quantity -1: must be a number of at least 0/],
    [Number.NaN, /Invalid memory quantity NaN/],
    [Infinity, /Invalid memory quantity Infinity: too large/],
  ];
  for (const [input, message] of cases) {
    assert.throws(() => parseMemoryQuantity(input), (e: unknown) => {
      assert.ok(e instanceof RangeError, `RangeError for ${String(input)}`);
      assert.match(e.message, message);
      return true;
    });
  }
});

Deno.test("parseCpuQuantity() reads cores and milli-cores", () => {
  assert.equal(parseCpuQuantity("500m"), 0.5);
  assert.equal(parseCpuQuantity("1"), 1);
  assert.equal(parseCpuQuantity("2.5"), 2.5);
  assert.equal(parseCpuQuantity(0.5), 0.5);
  assert.equal(parseCpuQuantity("100m"), 0.1);
  assert.equal(parseCpuQuantity("250000000n"), 0.25);
  assert.equal(parseCpuQuantity("1e-1"), 0.1);
  assert.equal(parseCpuQuantity("0"), 0);
});

Deno.test("parseCpuQuantity() refuses what is not a CPU quantity", () => {
  const cases: [string | number, RegExp][] = [
    ["", /Invalid CPU quantity "": expected a number/],
    ["half", /Invalid CPU quantity "half": expected a number/],
    ["1Gi", /CPU is counted in cores/],
    ["2k", /CPU is counted in cores/],
    ["500mc", /unknown unit "mc", use one of m \(milli-cores\) or none/],
    ["-1", /must not be negative/],
    [-0.5, /must be a number of at least 0/],
    [Number.NaN, /Invalid CPU quantity NaN/],
  ];
  for (const [input, message] of cases) {
    assert.throws(() => parseCpuQuantity(input), (e: unknown) => {
      assert.ok(e instanceof RangeError, `RangeError for ${String(input)}`);
      assert.match(e.message, message);
      return true;
    });
  }
});
