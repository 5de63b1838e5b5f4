// Submits and evaluates through Fabric's older Node SDK (fabric-network 2.2) with discovery on,
// its default: the connection profile names the peer only, so the orderer, the endorsers and
// the chaincodes the peer serves come from the discovery service. Prints one JSON object with
// what each step saw. Settings come from the environment: PEER (host:port), MSP_DIR, MSP_ID,
// CHANNEL, CHAINCODE, AS_LOCALHOST ("false" to dial the advertised host), and TLS_CA (the
// peer's TLS CA certificate file, to connect over TLS).
'use strict';

const fs = require('fs');
const { Gateway, Wallets } = require('fabric-network');
const { wallet: memberWallet } = require('./msp');

async function attempt(call) {
    try {
        return { ok: true, value: await call() };
    } catch (error) {
        return { ok: false, error: error.message };
    }
}

async function main() {
    const { PEER, MSP_DIR, MSP_ID, CHANNEL, CHAINCODE, AS_LOCALHOST, TLS_CA } = process.env;
    const peer = TLS_CA
        ? { url: `grpcs://${PEER}`, tlsCACerts: { pem: fs.readFileSync(TLS_CA).toString() } }
        : { url: `grpc://${PEER}` };
    const profile = {
        name: 'ccvm',
        version: '1.0.0',
        client: { organization: 'Org' },
        organizations: { Org: { mspid: MSP_ID, peers: ['peer0'] } },
        peers: { peer0: peer },
    };
    const wallet = await memberWallet(Wallets, MSP_DIR, MSP_ID, 'caller');
    const gateway = new Gateway();
    const out = {};
    try {
        await gateway.connect(profile, {
            wallet,
            identity: 'caller',
            discovery: { enabled: true, asLocalhost: AS_LOCALHOST !== 'false' },
            eventHandlerOptions: { commitTimeout: 20 },
        });
        const network = await gateway.getNetwork(CHANNEL);
        const contract = network.getContract(CHAINCODE);
        out.submit = await attempt(async () => (await contract.submitTransaction('put', 'found', 'by discovery')).toString());
        out.evaluate = await attempt(async () => (await contract.evaluateTransaction('get', 'found')).toString());
        const channel = network.getChannel();
        out.committers = channel.getCommitters().map((committer) => committer.name);
        out.endorsers = channel.getEndorsers().map((endorser) => endorser.name);
        out.unknown = await attempt(async () => (await network.getContract('nowhere').submitTransaction('put', 'k', 'v')).toString());
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
