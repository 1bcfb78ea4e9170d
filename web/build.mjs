// Copies the charting library, Swagger UI and ReDoc installed from the npm registry (by `npm ci`)
// next to the dashboard's own static files, where `mdw serve` serves them from (the chart, /docs
// and /redoc then work with no network). Nothing here is committed:
// the vendor directory is git-ignored, and `make web` / `.ci/run` rebuild it.
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, "..", "src", "mdw", "dashboard", "static", "vendor");
const pkg = (name) => join(here, "node_modules", name);

for (const name of ["lightweight-charts", "swagger-ui-dist", "redoc"]) {
  if (!existsSync(pkg(name))) {
    console.error(`web/build.mjs: ${name} is not installed; run \`npm ci\` in web/ first`);
    process.exit(1);
  }
}
const pkgDir = pkg("lightweight-charts");
mkdirSync(outDir, { recursive: true });

// Write to a temporary name, then rename, so a server never serves a half-copied file.
function install(src, name) {
  const tmp = join(outDir, `.${name}.tmp`);
  copyFileSync(src, tmp);
  renameSync(tmp, join(outDir, name));
}

const versionOf = (name) => JSON.parse(readFileSync(join(pkg(name), "package.json"), "utf8")).version;
const { version } = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
install(join(pkgDir, "dist", "lightweight-charts.standalone.production.mjs"), "lightweight-charts.mjs");
install(join(pkgDir, "LICENSE"), "lightweight-charts.LICENSE.txt");
// /docs (FastAPI's get_swagger_ui_html) and /redoc (get_redoc_html) point at these names.
install(join(pkg("swagger-ui-dist"), "swagger-ui-bundle.js"), "swagger-ui-bundle.js");
install(join(pkg("swagger-ui-dist"), "swagger-ui.css"), "swagger-ui.css");
install(join(pkg("swagger-ui-dist"), "favicon-32x32.png"), "swagger-ui-favicon.png");
install(join(pkg("swagger-ui-dist"), "LICENSE"), "swagger-ui.LICENSE.txt");
install(join(pkg("redoc"), "bundles", "redoc.standalone.js"), "redoc.standalone.js");
install(join(pkg("redoc"), "LICENSE"), "redoc.LICENSE.txt");
const versions = { "lightweight-charts": version, "swagger-ui-dist": versionOf("swagger-ui-dist"),
                   redoc: versionOf("redoc") };
writeFileSync(join(outDir, "manifest.json"), JSON.stringify(versions, null, 2) + "\n");
console.log(`web: ${Object.entries(versions).map(([n, v]) => `${n} ${v}`).join(", ")} -> ${outDir}`);
