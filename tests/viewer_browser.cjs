// Open viewer pages in headless Chromium (playwright-core), one after the other in one browser: wait for each
// page's first frames, screenshot its canvas.
//
// usage: node viewer_browser.cjs SPEC_JSON
//   SPEC: {playwright: path of the playwright-core package, chromium: executable, profile: fresh user-data-dir,
//          pages: [{url, screenshot: PNG path}], width, height, frames: frames to wait for after the scene
//          showed, timeoutMs, settle: optional, after those frames wait until no request has been in flight for
//          500 ms (a Streamed SOG's chunks load after its first frame) and then for `frames` more frames}
// Prints one JSON object: {pages: [{url, state: window.sogsViewer, canvas: {x, y, width, height},
// console: [{type, text}], pageErrors: [...], failedRequests: [...], badResponses: [...], seconds}], seconds}.
'use strict';

const spec = JSON.parse(process.argv[2]);
const { chromium } = require(spec.playwright);

const ARGS = [
    '--headless', '--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
];

async function visit(context, url, screenshot) {
    const started = Date.now();
    const report = { url, console: [], pageErrors: [], failedRequests: [], badResponses: [] };
    const page = await context.newPage();
    page.on('console', (message) => report.console.push({ type: message.type(), text: message.text() }));
    page.on('pageerror', (error) => report.pageErrors.push(String(error)));
    page.on('requestfailed', (request) => report.failedRequests.push(
        `${request.url()}: ${request.failure() ? request.failure().errorText : '?'}`));
    page.on('response', (response) => {
        if (response.status() >= 400) report.badResponses.push(`${response.url()}: ${response.status()}`);
    });
    await page.goto(url, { waitUntil: 'load', timeout: spec.timeoutMs });
    try {
        await page.waitForFunction(
            (frames) => window.sogsViewer && (window.sogsViewer.error || window.sogsViewer.frames >= frames),
            spec.frames, { timeout: spec.timeoutMs, polling: 100 });
        if (spec.settle) {
            await page.waitForLoadState('networkidle', { timeout: spec.timeoutMs });
            const seen = await page.evaluate(() => window.sogsViewer.frames);
            await page.waitForFunction(
                (frames) => window.sogsViewer.error || window.sogsViewer.frames >= frames,
                seen + spec.frames, { timeout: spec.timeoutMs, polling: 100 });
        }
    } catch (error) {
        report.waitError = String(error);
    }
    report.state = await page.evaluate(() => window.sogsViewer || null);
    const canvas = page.locator('canvas#scene');
    report.canvas = await canvas.boundingBox();
    await canvas.screenshot({ path: screenshot });
    await page.close();
    report.seconds = (Date.now() - started) / 1000;
    return report;
}

(async () => {
    const started = Date.now();
    const context = await chromium.launchPersistentContext(spec.profile, {
        executablePath: spec.chromium, headless: true, args: ARGS,
        viewport: { width: spec.width, height: spec.height }, deviceScaleFactor: 1,
    });
    const pages = [];
    try {
        for (const { url, screenshot } of spec.pages) pages.push(await visit(context, url, screenshot));
    } finally {
        await context.close();
    }
    process.stdout.write(JSON.stringify({ pages, seconds: (Date.now() - started) / 1000 }));
})().catch((error) => {
    process.stdout.write(JSON.stringify({ fatal: String(error && error.stack || error) }));
    process.exit(1);
});
