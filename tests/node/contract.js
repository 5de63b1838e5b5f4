// An asset-transfer contract written with fabric-contract-api, Hyperledger Fabric's high-level
// Node API, run against ccvm unchanged.
//
// Run: CORE_CHAINCODE_ID_NAME=nodebasic:1.0 npx fabric-chaincode-node start --peer.address 127.0.0.1:7052
'use strict';

const { Contract } = require('fabric-contract-api');

class AssetTransfer extends Contract {
    async CreateAsset(ctx, id, color, size, owner, value) {
        if (await this.AssetExists(ctx, id)) {
            throw new Error(`the asset ${id} already exists`);
        }
        const asset = { ID: id, Color: color, Size: Number(size), Owner: owner, AppraisedValue: Number(value) };
        await ctx.stub.putState(id, Buffer.from(JSON.stringify(asset)));
        ctx.stub.setEvent('AssetCreated', Buffer.from(id));
        return JSON.stringify(asset);
    }

    async ReadAsset(ctx, id) {
        const raw = await ctx.stub.getState(id);
        if (!raw || raw.length === 0) {
            throw new Error(`the asset ${id} does not exist`);
        }
        return raw.toString();
    }

    async AssetExists(ctx, id) {
        const raw = await ctx.stub.getState(id);
        return !!raw && raw.length > 0;
    }

    async TransferAsset(ctx, id, newOwner) {
        const asset = JSON.parse(await this.ReadAsset(ctx, id));
        const oldOwner = asset.Owner;
        asset.Owner = newOwner;
        await ctx.stub.putState(id, Buffer.from(JSON.stringify(asset)));
        return oldOwner;
    }

    async WhoAmI(ctx) {
        return JSON.stringify({ mspid: ctx.clientIdentity.getMSPID(), id: ctx.clientIdentity.getID() });
    }

    async GetAllAssets(ctx) {
        const assets = [];
        const iterator = await ctx.stub.getStateByRange('', '');
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
            assets.push(JSON.parse(Buffer.from(next.value.value).toString()));
        }
        await iterator.close();
        return JSON.stringify(assets);
    }
}

module.exports.contracts = [AssetTransfer];
