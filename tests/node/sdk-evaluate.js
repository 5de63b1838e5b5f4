// Evaluates a chaincode function through Fabric's Node SDK (fabric-network 2.2, discovery off)
// as the identity in an MSP directory, and prints {"ok": true, "payload": "..."} or
// {"ok": false, "error": "..."} on stdout. Settings come from the environment: PEER
// (host:port), MSP_DIR, MSP_ID, CHANNEL, CHAINCODE, and ARGS (a JSON array: function first).
'use strict';

const { Gateway, Wallets } = require('fabric-network');
const { wallet: memberWallet } = require('./msp');

async function main() {
    const { PEER, MSP_DIR, MSP_ID, CHANNEL, CHAINCODE, ARGS } = process.env;
    const profile = {
        name: 'ccvm',
        version: '1.0.0',
        client: { organization: 'Org' },
        organizations: { Org: { mspid: MSP_ID, peers: ['peer0'] } },
        peers: { peer0: { url: `grpc://${PEER}` } },
        channels: {
            [CHANNEL]: {
                peers: {
                    peer0: { endorsingPeer: true, chaincodeQuery: true, ledgerQuery: true, eventSource: false },
                },
            },
        },
    };
    const wallet = await memberWallet(Wallets, MSP_DIR, MSP_ID, 'caller');
    const gateway = new Gateway();
    try {
        await gateway.connect(profile, { wallet, identity: 'caller', discovery: { enabled: false } });
        const network = await gateway.getNetwork(CHANNEL);
        const [fn, ...args] = JSON.parse(ARGS);
        const payload = await network.getContract(CHAINCODE).evaluateTransaction(fn, ...args);
        console.log(JSON.stringify({ ok: true, payload: payload.toString() }));
    } catch (error) {
        console.log(JSON.stringify({ ok: false, error: error.message }));
    } finally {
        gateway.disconnect();
    }
}

main().catch((error) => {
    console.error(error);
    process.exit(1);
});
