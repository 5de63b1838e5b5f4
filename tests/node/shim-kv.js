// A key-value chaincode written against fabric-shim's low-level API (Init/Invoke), mirroring the
// functions of ccvm's Rust `kv` example so both can be driven by the same tests.
//
// Run: CORE_CHAINCODE_ID_NAME=nodekv:1.0 node shim-kv.js --peer.address 127.0.0.1:7052
'use strict';

const shim = require('fabric-shim');

async function collect(iterator, map) {
    const out = [];
    for (;;) {
        const next = await iterator.next();
        if (next.value) {
            out.push(map(next.value));
        }
        if (next.done) {
            await iterator.close();
            return out;
        }
    }
}

const functions = {
    async put(stub, [key, value]) {
        await stub.putState(key, Buffer.from(value));
    },
    async get(stub, [key]) {
        return stub.getState(key);
    },
    async del(stub, [key]) {
        await stub.deleteState(key);
    },
    async bump(stub, [key]) {
        const count = Number((await stub.getState(key)).toString() || '0');
        await stub.putState(key, Buffer.from(String(count + 1)));
    },
    async putmany(stub, [prefix, count]) {
        for (let i = 0; i < Number(count); i++) {
            await stub.putState(prefix + String(i).padStart(5, '0'), Buffer.from('v' + i));
        }
    },
    async range(stub, [start, end]) {
        const keys = await collect(await stub.getStateByRange(start, end), (kv) => kv.key);
        return Buffer.from(JSON.stringify(keys));
    },
    async page(stub, [start, end, size, bookmark]) {
        const { iterator, metadata } = await stub.getStateByRangeWithPagination(start, end, Number(size), bookmark || '');
        const keys = await collect(iterator, (kv) => kv.key);
        return Buffer.from(JSON.stringify({ keys, bookmark: metadata.bookmark, count: metadata.fetchedRecordsCount }));
    },
    async history(stub, [key]) {
        const entries = await collect(await stub.getHistoryForKey(key), (m) => ({
            tx_id: m.txId,
            value: Buffer.from(m.value).toString(),
            is_delete: m.isDelete,
        }));
        return Buffer.from(JSON.stringify(entries));
    },
    async cput(stub, args) {
        const value = args.pop();
        const [type, ...attrs] = args;
        await stub.putState(stub.createCompositeKey(type, attrs), Buffer.from(value));
    },
    async cquery(stub, [type, ...attrs]) {
        const values = await collect(await stub.getStateByPartialCompositeKey(type, attrs), (kv) => Buffer.from(kv.value).toString());
        return Buffer.from(JSON.stringify(values));
    },
    async event(stub, [name, payload]) {
        stub.setEvent(name, Buffer.from(payload));
    },
    async setmeta(stub, [key, name, value]) {
        await stub.setStateValidationParameter(key, Buffer.from(value));
    },
    async getmeta(stub, [key]) {
        return stub.getStateValidationParameter(key);
    },
    async pput(stub, [collection, key, value]) {
        await stub.putPrivateData(collection, key, Buffer.from(value));
    },
    async pget(stub, [collection, key]) {
        return stub.getPrivateData(collection, key);
    },
    async phash(stub, [collection, key]) {
        return stub.getPrivateDataHash(collection, key);
    },
    async call(stub, [name, ...args]) {
        const response = await stub.invokeChaincode(name, args, '');
        if (response.status >= 400) {
            throw new Error('called chaincode failed: ' + response.message);
        }
        return response.payload;
    },
    async creator(stub) {
        const creator = stub.getCreator();
        return Buffer.from(JSON.stringify({ mspid: creator.mspid, pem: Buffer.from(creator.idBytes).toString() }));
    },
    async transient(stub, [key]) {
        return stub.getTransient().get(key);
    },
    async txinfo(stub) {
        const ts = stub.getTxTimestamp();
        return Buffer.from(JSON.stringify({ tx_id: stub.getTxID(), channel: stub.getChannelID(), timestamp: Number(ts.seconds) }));
    },
    async fail(stub, [message]) {
        throw new Error(message);
    },
};

class NodeKeyValue {
    async Init() {
        return shim.success();
    }

    async Invoke(stub) {
        const { fcn, params } = stub.getFunctionAndParameters();
        if (fcn === 'throw') {
            // Rejects out of Invoke: fabric-shim then never answers the transaction.
            throw new Error('thrown out of Invoke');
        }
        const fn = functions[fcn];
        if (!fn) {
            return shim.error(Buffer.from('unknown function ' + fcn));
        }
        try {
            const payload = await fn(stub, params);
            return shim.success(payload ? Buffer.from(payload) : Buffer.alloc(0));
        } catch (err) {
            return shim.error(err.message);
        }
    }
}

if (process.env.CHAINCODE_SERVER_ADDRESS) {
    // Chaincode as a service: the peer dials this address. fabric-shim 2.5 warns that start()
    // is unnecessary, but does not listen without it.
    shim.server(new NodeKeyValue(), {
        ccid: process.env.CORE_CHAINCODE_ID_NAME,
        address: process.env.CHAINCODE_SERVER_ADDRESS,
    }).start();
} else {
    shim.start(new NodeKeyValue());
}
