// Drives a chaincode through Fabric's Gateway client (@hyperledger/fabric-gateway) as the
// identity in an MSP directory, and prints one JSON object with what each step saw. Settings
// come from the environment: PEER (host:port), MSP_DIR, MSP_ID, CHANNEL, CHAINCODE, and SCENARIO:
//   flow     submit, evaluate, submitAsync + commit status, a conflicting pair, failing calls
//   events   chaincode events replayed from block 0, then resumed after the first one
//   evaluate one evaluation of ARGS (a JSON array: function first)
//   assets   the asset-transfer samples' application calls, and the contract metadata checked
//            against fabric-contract-api's schema as fabric-shim checks its own
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const Ajv = require('ajv');
const grpc = require('@grpc/grpc-js');
const { connect, hash, signers } = require('@hyperledger/fabric-gateway');
const { credentials } = require('./msp');

const DEADLINE_MS = 60000;

function text(bytes) {
    return Buffer.from(bytes).toString();
}

// What a failed call reports: gRPC code, message, and the gateway's error details.
function failure(error) {
    return {
        name: error.constructor.name,
        code: error.code,
        message: error.message,
        details: (error.details || []).map((d) => ({ address: d.address, mspId: d.mspId, message: d.message })),
    };
}

async function attempt(call) {
    try {
        return { ok: true, value: await call() };
    } catch (error) {
        return { ok: false, error: failure(error) };
    }
}

async function flow(contract) {
    const out = {};
    out.submit = await attempt(async () => text(await contract.submitTransaction('put', 'gw', 'v1')));
    out.evaluate = await attempt(async () => text(await contract.evaluateTransaction('get', 'gw')));
    out.async = await attempt(async () => {
        const commit = await contract.submitAsync('put', { arguments: ['gw', 'v2'] });
        const status = await commit.getStatus();
        return { code: status.code, successful: status.successful, block: Number(status.blockNumber), txId: commit.getTransactionId() };
    });
    out.afterAsync = await attempt(async () => text(await contract.evaluateTransaction('get', 'gw')));
    out.conflict = await attempt(async () => {
        const first = await contract.newProposal('bump', { arguments: ['counter'] }).endorse();
        const second = await contract.newProposal('bump', { arguments: ['counter'] }).endorse();
        const statuses = [];
        for (const tx of [first, second]) {
            const status = await (await tx.submit()).getStatus();
            statuses.push({ code: status.code, successful: status.successful });
        }
        return statuses;
    });
    out.evaluateFailure = await attempt(() => contract.evaluateTransaction('fail', 'no such thing'));
    out.submitFailure = await attempt(() => contract.submitTransaction('fail', 'no such thing'));
    out.otherOrg = await attempt(() =>
        contract.submit('put', { arguments: ['gw', 'v3'], endorsingOrganizations: ['OtherMSP'] }),
    );
    return out;
}

// Reads events until `count` arrived or the stream fails; then closes it.
async function readEvents(network, chaincode, options, count) {
    const events = await network.getChaincodeEvents(chaincode, options);
    const seen = [];
    try {
        for await (const event of events) {
            seen.push({
                name: event.eventName,
                payload: text(event.payload),
                block: Number(event.blockNumber),
                txId: event.transactionId,
                chaincode: event.chaincodeName,
            });
            if (seen.length >= count) {
                break;
            }
        }
    } finally {
        events.close();
    }
    return seen;
}

async function events(network, contract) {
    const out = {};
    for (const n of [1, 2, 3]) {
        await contract.submitTransaction('event', 'tick', `payload ${n}`);
    }
    out.replayed = await attempt(() => readEvents(network, contract.getChaincodeName(), { startBlock: 0n }, 3));
    if (out.replayed.ok) {
        const first = out.replayed.value[0];
        const checkpoint = { getBlockNumber: () => BigInt(first.block), getTransactionId: () => first.txId };
        out.resumed = await attempt(() => readEvents(network, contract.getChaincodeName(), { checkpoint }, 2));
    }
    out.live = await attempt(async () => {
        const reading = readEvents(network, contract.getChaincodeName(), {}, 1);
        await new Promise((resolve) => setTimeout(resolve, 500));
        await contract.submitTransaction('event', 'live', 'after the stream opened');
        return reading;
    });
    return out;
}

// Whether `metadata` conforms to Fabric's contract metadata schema, validated as fabric-shim
// validates the metadata of a Node contract before serving it.
function checkMetadata(metadata) {
    const schemaPath = path.join(path.dirname(require.resolve('fabric-contract-api')), 'schema', 'contract-schema.json');
    const ajv = new Ajv({ schemaId: 'id', logger: false });
    ajv.addMetaSchema(require('ajv/lib/refs/json-schema-draft-04.json'));
    const valid = ajv.validate(JSON.parse(fs.readFileSync(schemaPath, 'utf8')), metadata);
    return { valid, errors: ajv.errors || [] };
}

async function assets(contract) {
    const out = {};
    out.init = await attempt(async () => text(await contract.submitTransaction('InitLedger')));
    out.create = await attempt(async () =>
        text(await contract.submitTransaction('CreateAsset', 'asset8', 'teal', '4', 'Ana', '950')),
    );
    out.transfer = await attempt(async () => text(await contract.submitTransaction('TransferAsset', 'asset8', 'Bo')));
    out.read = await attempt(async () => JSON.parse(text(await contract.evaluateTransaction('ReadAsset', 'asset8'))));
    out.exists = await attempt(async () => text(await contract.evaluateTransaction('AssetTransfer:AssetExists', 'asset8')));
    out.duplicate = await attempt(() => contract.submitTransaction('CreateAsset', 'asset8', 'x', '1', 'y', '1'));
    out.unknown = await attempt(() => contract.evaluateTransaction('NoSuchTransaction'));
    out.metadata = await attempt(async () => {
        const metadata = JSON.parse(text(await contract.evaluateTransaction('org.hyperledger.fabric:GetMetadata')));
        return { metadata, check: checkMetadata(metadata) };
    });
    return out;
}

async function main() {
    const { PEER, MSP_DIR, MSP_ID, CHANNEL, CHAINCODE, SCENARIO, ARGS } = process.env;
    const client = new grpc.Client(PEER, grpc.credentials.createInsecure(), {
        'grpc.max_receive_message_length': 100 * 1024 * 1024,
        'grpc.max_send_message_length': 100 * 1024 * 1024,
    });
    const deadline = () => ({ deadline: Date.now() + DEADLINE_MS });
    const member = credentials(MSP_DIR);
    const gateway = connect({
        client,
        identity: { mspId: MSP_ID, credentials: member.certificate },
        signer: signers.newPrivateKeySigner(crypto.createPrivateKey(member.privateKey)),
        hash: hash.sha256,
        evaluateOptions: deadline,
        endorseOptions: deadline,
        submitOptions: deadline,
        commitStatusOptions: deadline,
    });
    try {
        const network = gateway.getNetwork(CHANNEL);
        const contract = network.getContract(CHAINCODE);
        let out;
        if (SCENARIO === 'flow') {
            out = await flow(contract);
        } else if (SCENARIO === 'assets') {
            out = await assets(contract);
        } else if (SCENARIO === 'events') {
            out = await events(network, contract);
        } else {
            const [fn, ...args] = JSON.parse(ARGS);
            out = await attempt(async () => text(await contract.evaluateTransaction(fn, ...args)));
        }
        console.log(JSON.stringify(out));
    } finally {
        gateway.close();
        client.close();
    }
}

main().catch((error) => {
    console.error(error);
    process.exit(1);
});
