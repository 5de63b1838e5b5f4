// Submits through Fabric's older Node SDK (fabric-network 2.2, discovery off) as the identity in
// an MSP directory: the node is the endorsing peer, the orderer and the event source. Then
// listens to blocks and chaincode events from block 0. Prints one JSON object with what each
// step saw. Settings come from the environment: PEER (host:port), MSP_DIR, MSP_ID, CHANNEL,
// CHAINCODE.
'use strict';

const { Gateway, Wallets } = require('fabric-network');
const { wallet: memberWallet } = require('./msp');

const WAIT_MS = 30000;

async function attempt(call) {
    try {
        return { ok: true, value: await call() };
    } catch (error) {
        return { ok: false, error: error.message };
    }
}

// Resolves with what `collect` gathered once `done` says so, or fails after WAIT_MS.
function listen(register, collect, done) {
    return new Promise((resolve, reject) => {
        const seen = [];
        const timer = setTimeout(() => reject(new Error(`only ${JSON.stringify(seen)} within ${WAIT_MS} ms`)), WAIT_MS);
        register(async (event) => {
            seen.push(collect(event));
            if (done(seen)) {
                clearTimeout(timer);
                resolve(seen);
            }
        });
    });
}

async function main() {
    const { PEER, MSP_DIR, MSP_ID, CHANNEL, CHAINCODE } = process.env;
    const profile = {
        name: 'ccvm',
        version: '1.0.0',
        client: { organization: 'Org' },
        organizations: { Org: { mspid: MSP_ID, peers: ['peer0'] } },
        orderers: { orderer0: { url: `grpc://${PEER}` } },
        peers: { peer0: { url: `grpc://${PEER}` } },
        channels: {
            [CHANNEL]: {
                orderers: ['orderer0'],
                peers: {
                    peer0: { endorsingPeer: true, chaincodeQuery: true, ledgerQuery: true, eventSource: true },
                },
            },
        },
    };
    const wallet = await memberWallet(Wallets, MSP_DIR, MSP_ID, 'caller');
    const gateway = new Gateway();
    const out = {};
    try {
        await gateway.connect(profile, { wallet, identity: 'caller', discovery: { enabled: false }, eventHandlerOptions: { commitTimeout: 20 } });
        const network = await gateway.getNetwork(CHANNEL);
        const contract = network.getContract(CHAINCODE);
        out.submit = await attempt(async () => {
            const transaction = contract.createTransaction('put');
            const result = (await transaction.submit('sdk', 'submitted')).toString();
            out.submitTxId = transaction.getTransactionId();
            return result;
        });
        out.evaluate = await attempt(async () => (await contract.evaluateTransaction('get', 'sdk')).toString());
        out.event = await attempt(async () => (await contract.submitTransaction('event', 'sdk-event', 'from the SDK')).toString());
        out.blocks = await attempt(async () => {
            let listener;
            const seen = await listen(
                (handler) => {
                    listener = handler;
                    return network.addBlockListener(handler, { type: 'full', startBlock: 0 });
                },
                (event) => ({ number: Number(event.blockNumber), txs: event.getTransactionEvents().map((tx) => tx.transactionId) }),
                (seen) => seen.length >= 2,
            );
            network.removeBlockListener(listener);
            return seen;
        });
        out.contractEvents = await attempt(async () => {
            let listener;
            const seen = await listen(
                (handler) => {
                    listener = handler;
                    return contract.addContractListener(handler, { startBlock: 0 });
                },
                (event) => ({ name: event.eventName, payload: event.payload ? event.payload.toString() : null }),
                (seen) => seen.length >= 1,
            );
            contract.removeContractListener(listener);
            return seen;
        });
    } catch (error) {
        out.error = error.message;
    } finally {
        gateway.disconnect();
    }
    console.log(JSON.stringify(out));
}

main().catch((error) => {
    console.error(error);
    process.exit(1);
});
