#!/usr/bin/env node
// A gRPC client nobody in pkcard wrote: @grpc/grpc-js with the protos loaded at run time.
//
// Usage: node conformance.js PARAMS_JSON
//   PARAMS_JSON: {"socket": ".../pkcardd.sock", "backend_socket": ".../backend.sock",
//                 "protos": ".../protos", "pk_reader": "...", "kzz_reader": "...",
//                 "secrets": {"pin": ..., "puk": ..., "spin": ..., "tpin": ..., "new_spin": ...,
//                             "wrong_pin": ..., "new_pin": ..., "reactivation": ...},
//                 "deadline_s": null | number}
// Calls every pkcard.v1 RPC over the daemon's Unix socket (deadline_s null: no deadline, as
// grpc-js sends by default) and prints one JSON report on stdout: for each step its gRPC
// status code and, for a failure, the ErrorInfo read from the grpc-status-details-bin
// trailer (google.rpc.Status decoded with protobufjs). tests/interop/test_node_client.py
// starts pkcardd --simulated and checks the report.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

// google.rpc.Status and google.rpc.ErrorInfo, as in googleapis (field numbers are the wire).
const RPC_TYPES = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } },
          },
        },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: 'int32', id: 1 },
                message: { type: 'string', id: 2 },
                details: { rule: 'repeated', type: 'google.protobuf.Any', id: 3 },
              },
            },
            ErrorInfo: {
              fields: {
                reason: { type: 'string', id: 1 },
                domain: { type: 'string', id: 2 },
                metadata: { keyType: 'string', type: 'string', id: 3 },
              },
            },
          },
        },
      },
    },
    health: {
      nested: {
        HealthCheckRequest: { fields: { service: { type: 'string', id: 1 } } },
        HealthCheckResponse: { fields: { status: { type: 'int32', id: 1 } } },
      },
    },
  },
});
const Status = RPC_TYPES.lookupType('google.rpc.Status');
const ErrorInfo = RPC_TYPES.lookupType('google.rpc.ErrorInfo');
const HealthCheckRequest = RPC_TYPES.lookupType('health.HealthCheckRequest');
const HealthCheckResponse = RPC_TYPES.lookupType('health.HealthCheckResponse');

function errorInfo(error) {
  const raw = error.metadata ? error.metadata.get('grpc-status-details-bin') : [];
  if (!raw || raw.length === 0) return null;
  const status = Status.decode(raw[0]);
  for (const detail of status.details) {
    if (detail.type_url.endsWith('/google.rpc.ErrorInfo')) {
      const info = ErrorInfo.decode(detail.value);
      return { reason: info.reason, domain: info.domain, metadata: info.metadata || {} };
    }
  }
  return { reason: null, domain: null, metadata: {} };
}

function load(protos, file) {
  const definition = protoLoader.loadSync(path.join(protos, file), {
    includeDirs: [protos],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition);
}

async function main() {
  const params = JSON.parse(process.argv[2]);
  const { secrets } = params;
  const v1 = {};
  for (const file of ['readers', 'cards', 'sessions', 'signatures', 'simulation']) {
    Object.assign(v1, load(params.protos, `pkcard/v1/${file}.proto`).pkcard.v1);
  }
  const backendPkg = load(params.protos, 'pkcard/backend/v1/backend.proto').pkcard.backend.v1;
  const target = `unix:${params.socket}`;
  const insecure = grpc.credentials.createInsecure();
  const stubs = {
    readers: new v1.ReaderService(target, insecure),
    cards: new v1.CardService(target, insecure),
    sessions: new v1.SessionService(target, insecure),
    signatures: new v1.SignatureService(target, insecure),
    simulation: new v1.SimulationService(target, insecure),
  };
  const backend = new backendPkg.SessionService(`unix:${params.backend_socket}`, insecure);
  const generic = new grpc.Client(target, insecure);
  const report = {};

  function options() {
    if (params.deadline_s === null) return {};
    return { deadline: new Date(Date.now() + params.deadline_s * 1000) };
  }

  function call(stub, method, request, metadata) {
    return new Promise((resolve) => {
      stub[method](request, metadata || new grpc.Metadata(), options(), (error, response) => {
        if (error) {
          resolve({ code: error.code, error_info: errorInfo(error), response: null });
        } else {
          resolve({ code: grpc.status.OK, error_info: null, response });
        }
      });
    });
  }

  async function step(name, stub, method, request, summarize, metadata) {
    const outcome = await call(stub, method, request, metadata);
    report[name] = {
      code: outcome.code,
      error_info: outcome.error_info,
      value: outcome.response === null ? null : summarize(outcome.response),
    };
    return outcome.response;
  }

  const unknown = (method, serialize, deserialize, request) => new Promise((resolve) => {
    generic.makeUnaryRequest(method, serialize, deserialize, request, new grpc.Metadata(),
      options(), (error, response) => {
        resolve(error
          ? { code: error.code, error_info: errorInfo(error), value: null }
          : { code: grpc.status.OK, error_info: null, value: response });
      });
  });

  const health = await unknown('/grpc.health.v1.Health/Check',
    (m) => Buffer.from(HealthCheckRequest.encode(m).finish()),
    (b) => HealthCheckResponse.decode(b), { service: '' });
  report.health = { code: health.code, error_info: health.error_info,
    value: health.value === null ? null : health.value.status };

  report.unimplemented = await unknown('/pkcard.v1.CardService/NoSuchMethod',
    (m) => m, (b) => b, Buffer.alloc(0));

  // WatchEvents: the snapshot comes first; then we hang up.
  report.watch_events = await new Promise((resolve) => {
    const stream = stubs.readers.WatchEvents({}, new grpc.Metadata(), options());
    let done = false;
    stream.on('data', (message) => {
      if (done) return;
      done = true;
      resolve({ code: grpc.status.OK, error_info: null,
        value: message.snapshot ? message.snapshot.readers.length : -1 });
      stream.cancel();
    });
    stream.on('error', (error) => {
      if (done) return;
      done = true;
      resolve({ code: error.code, error_info: errorInfo(error), value: null });
    });
  });

  const pk = params.pk_reader;
  const kzz = params.kzz_reader;
  await step('insert_pk', stubs.simulation, 'InsertCard', { reader: pk, profile: 'pk-regular' },
    () => true);
  await step('insert_kzz', stubs.simulation, 'InsertCard', { reader: kzz, profile: 'kzz' },
    () => true);
  await step('list_readers', stubs.readers, 'ListReaders', {}, (r) => r.readers.length);
  await step('get_card_pk', stubs.cards, 'GetCard', { reader: pk }, (r) => r.kind);
  await step('get_card_kzz', stubs.cards, 'GetCard', { reader: kzz }, (r) => r.kind);
  await step('get_pin_status', stubs.cards, 'GetPinStatus', { reader: pk },
    (r) => r.statuses.length);
  await step('verify_pin_wrong', stubs.cards, 'VerifyPin',
    { reader: pk, reference: 'PIN_REFERENCE_PIN', pin: secrets.wrong_pin }, (r) => r.status.state);
  await step('verify_pin', stubs.cards, 'VerifyPin',
    { reader: pk, reference: 'PIN_REFERENCE_PIN', pin: secrets.pin }, (r) => r.status.state);
  await step('change_pin', stubs.cards, 'ChangePin',
    { reader: pk, reference: 'PIN_REFERENCE_PIN', old_pin: secrets.pin, new_pin: secrets.new_pin },
    (r) => r.status.state);
  await step('unblock_pin', stubs.cards, 'UnblockPin',
    { reader: pk, puk: secrets.puk, new_pin: secrets.pin }, (r) => r.status.tries_left);
  const document = Buffer.from('pkcard interop: a document signed by a Node client');
  const signed = await step('sign_document', stubs.signatures, 'SignDocument',
    { reader: pk, document, spin: secrets.spin }, (r) => r.cms.length > 0);
  await step('verify_document', stubs.signatures, 'VerifyDocument',
    { document, cms: signed ? signed.cms : Buffer.alloc(0) }, (r) => r.trust_anchor !== '');

  const me = new grpc.Metadata();
  me.set('x-pkcard-backend-client', 'node-interop');
  const challenge = async () => {
    const reply = await call(backend, 'IssueChallenge', {}, me);
    return reply.response ? reply.response.nonce : Buffer.alloc(0);
  };
  const opened = await step('open_session', stubs.sessions, 'OpenSession',
    { pk_reader: pk, kzz_reader: kzz, challenge: await challenge(), authorizations: ['I002'],
      pin: secrets.pin }, (r) => r.session_id !== '');
  const sessionId = opened ? opened.session_id : '';
  await step('refresh_session', stubs.sessions, 'RefreshSession',
    { session_id: sessionId, challenge: await challenge() }, (r) => r.token.token !== '');
  await step('get_session', stubs.sessions, 'GetSession', { session_id: sessionId },
    (r) => r.state);
  await step('close_session', stubs.sessions, 'CloseSession', { session_id: sessionId },
    (r) => r.closed);
  await step('reactivate_card', stubs.sessions, 'ReactivateCard',
    { reader: pk, password: secrets.reactivation }, (r) => r.card_serial);

  await step('insert_transport', stubs.simulation, 'InsertCard',
    { reader: pk, profile: 'pk-transport' }, () => true);
  await step('activate_signature_pin', stubs.cards, 'ActivateSignaturePin',
    { reader: pk, tpin: secrets.tpin, new_spin: secrets.new_spin }, (r) => r.status.reference);
  await step('remove_card', stubs.simulation, 'RemoveCard', { reader: kzz }, (r) => r.removed);

  for (const stub of [...Object.values(stubs), backend, generic]) stub.close();
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().catch((error) => {
  process.stderr.write(`conformance.js: ${error.stack || error}\n`);
  process.exit(1);
});
