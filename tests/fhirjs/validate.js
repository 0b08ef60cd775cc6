// Validates FHIR R4 JSON with FHIR.js (npm package "fhir", its bundled R4 definitions).
// stdin: a JSON array of resources; stdout: a JSON array of {valid, errors} in the same order.
const { Fhir } = require('fhir');
const fhir = new Fhir();
let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const resources = JSON.parse(input);
  const out = resources.map((resource) => {
    const result = fhir.validate(resource, { errorOnUnexpected: true });
    const errors = result.messages.filter((m) => m.severity === 'error');
    return { valid: result.valid && errors.length === 0, errors, warnings: result.messages.length - errors.length };
  });
  process.stdout.write(JSON.stringify(out));
});
