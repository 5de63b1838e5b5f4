// A member's signing identity read from an MSP directory (`signcerts/`, `keystore/`), as
// Fabric's tools lay it out, for the SDK clients of the tests.
'use strict';

const fs = require('fs');
const path = require('path');

function firstFile(dir) {
    const name = fs.readdirSync(dir).sort()[0];
    return fs.readFileSync(path.join(dir, name));
}

// The member's certificate and private key, PEM.
function credentials(mspDir) {
    return {
        certificate: firstFile(path.join(mspDir, 'signcerts')),
        privateKey: firstFile(path.join(mspDir, 'keystore')),
    };
}

// An in-memory fabric-network wallet holding the member as `label`.
async function wallet(Wallets, mspDir, mspId, label) {
    const { certificate, privateKey } = credentials(mspDir);
    const held = await Wallets.newInMemoryWallet();
    await held.put(label, {
        credentials: { certificate: certificate.toString(), privateKey: privateKey.toString() },
        mspId,
        type: 'X.509',
    });
    return held;
}

module.exports = { credentials, wallet };
