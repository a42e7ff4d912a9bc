/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4), for tests that scrape the broker. No
 * maintained npm parser exists (parse-prometheus-text-format has had no release in years), so this one follows the
 * format's grammar and throws on anything it does not allow: a sample before its family's TYPE, a sample name that
 * does not belong to its family (counter `x` or `x_total`; histogram `x_bucket`, `x_sum`, `x_count`), a malformed or
 * duplicate label, an unescaped quote, a bad number, a histogram without its `+Inf` bucket, the same series twice.
 */

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<MetricType>(["counter", "gauge", "histogram", "summary", "untyped"]);
const SUFFIXES: Record<MetricType, string[]> = {
  counter: ["", "_total"],
  gauge: [""],
  untyped: [""],
  histogram: ["_bucket", "_sum", "_count"],
  summary: ["", "_sum", "_count"],
};

export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const seriesSeen = new Set<string>();
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((line, index) => {
    const where = `line ${index + 1} ${JSON.stringify(line.slice(0, 120))}`;
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // an ordinary comment
      const [, kind, name, rest] = m;
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
      const family = families.get(name) ?? { name, type: "untyped" as MetricType, help: "", samples: [] };
      if (kind === "TYPE") {
        if (!TYPES.has(rest as MetricType)) throw new Error(`${where}: unknown type`);
        if (family.samples.length) throw new Error(`${where}: TYPE after samples`);
        family.type = rest as MetricType;
      } else family.help = rest.replace(/\\n/g, "\n").replace(/\\\\/g, "\\");
      families.set(name, family);
      return;
    }
    const sample = parseSample(line, where);
    const family = familyOf(sample.name, families);
    if (!family) throw new Error(`${where}: sample of an undeclared family`);
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (seriesSeen.has(key)) throw new Error(`${where}: duplicate series`);
    seriesSeen.add(key);
    if (sample.name.endsWith("_bucket") && family.type === "histogram" && sample.labels.le === undefined) throw new Error(`${where}: bucket without le`);
    family.samples.push(sample);
  });
  for (const family of families.values()) {
    if (family.type !== "histogram") continue;
    const counts = family.samples.filter((s) => s.name === `${family.name}_count`);
    for (const count of counts) {
      const { ...labels } = count.labels;
      const inf = family.samples.find((s) => s.name === `${family.name}_bucket` && s.labels.le === "+Inf" && sameLabels(s.labels, labels, "le"));
      if (!inf || inf.value !== count.value) throw new Error(`histogram ${family.name}${JSON.stringify(labels)}: +Inf bucket missing or not equal to _count`);
    }
  }
  return families;
}

function familyOf(sampleName: string, families: Map<string, MetricFamily>): MetricFamily | undefined {
  for (const family of families.values()) {
    if (SUFFIXES[family.type].some((suffix) => family.name + suffix === sampleName)) return family;
  }
  return undefined;
}

function sameLabels(a: Record<string, string>, b: Record<string, string>, except: string): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)].filter((k) => k !== except));
  return [...keys].every((k) => a[k] === b[k]);
}

function parseSample(line: string, where: string): Sample {
  let i = 0;
  while (i < line.length && /[a-zA-Z0-9_:]/.test(line[i])) i++;
  const name = line.slice(0, i);
  if (!NAME.test(name)) throw new Error(`${where}: bad sample name`);
  const labels: Record<string, string> = {};
  if (line[i] === "{") {
    i++;
    while (line[i] !== "}") {
      let j = i;
      while (j < line.length && /[a-zA-Z0-9_]/.test(line[j])) j++;
      const label = line.slice(i, j);
      if (!LABEL_NAME.test(label)) throw new Error(`${where}: bad label name`);
      if (label in labels) throw new Error(`${where}: duplicate label ${label}`);
      if (line[j] !== "=" || line[j + 1] !== '"') throw new Error(`${where}: expected ="`);
      j += 2;
      let value = "";
      for (;;) {
        if (j >= line.length) throw new Error(`${where}: unterminated label value`);
        const c = line[j];
        if (c === '"') break;
        if (c === "\\") {
          const next = line[j + 1];
          if (next === "n") value += "\n";
          else if (next === "\\" || next === '"') value += next;
          else throw new Error(`${where}: bad escape \\${next}`);
          j += 2;
        } else {
          value += c;
          j++;
        }
      }
      labels[label] = value;
      i = j + 1;
      if (line[i] === ",") i++;
      else if (line[i] !== "}") throw new Error(`${where}: expected , or }`);
    }
    i++;
  }
  if (line[i] !== " ") throw new Error(`${where}: expected a space before the value`);
  const [valueText, timestamp, ...extra] = line.slice(i + 1).split(" ");
  if (extra.length || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) throw new Error(`${where}: bad timestamp`);
  return { name, labels, value: parseValue(valueText, where) };
}

/** Values as Prometheus reads them (Go's ParseFloat): NaN and Inf in any case (prom-client writes "Nan"). */
function parseValue(text: string, where: string): number {
  if (/^[+]?inf(inity)?$/i.test(text)) return Infinity;
  if (/^-inf(inity)?$/i.test(text)) return -Infinity;
  if (/^nan$/i.test(text)) return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

/** The value of one series (labels matched exactly), or undefined. */
export function seriesValue(families: Map<string, MetricFamily>, sampleName: string, labels: Record<string, string> = {}): number | undefined {
  for (const family of families.values()) {
    const hit = family.samples.find((s) => s.name === sampleName && sameLabels(s.labels, labels, ""));
    if (hit) return hit.value;
  }
  return undefined;
}
