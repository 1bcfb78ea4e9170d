// Copies the charting library installed from the npm registry (by `npm ci`) next to the
// dashboard's own static files, where `mdw serve` serves it from. Nothing here is committed:
// the vendor directory is git-ignored, and `make web` / `.ci/run` rebuild it.
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = join(here, "node_modules", "lightweight-charts");
const outDir = join(here, "..", "src", "mdw", "dashboard", "static", "vendor");

if (!existsSync(pkgDir)) {
  console.error("web/build.mjs: lightweight-charts is not installed; run `npm ci` in web/ first");
  process.exit(1);
}
mkdirSync(outDir, { recursive: true });

// Write to a temporary name, then rename, so a server never serves a half-copied file.
function install(src, name) {
  const tmp = join(outDir, `.${name}.tmp`);
  copyFileSync(src, tmp);
  renameSync(tmp, join(outDir, name));
}

const { version } = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
install(join(pkgDir, "dist", "lightweight-charts.standalone.production.mjs"), "lightweight-charts.mjs");
install(join(pkgDir, "LICENSE"), "lightweight-charts.LICENSE.txt");
writeFileSync(join(outDir, "manifest.json"), JSON.stringify({ "lightweight-charts": version }, null, 2) + "\n");
console.log(`web: lightweight-charts ${version} -> ${outDir}`);
