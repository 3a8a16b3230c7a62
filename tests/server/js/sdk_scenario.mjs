// The AWS SDK for JavaScript v3 against a Shoal endpoint, on viewer events.
//
//     node sdk_scenario.mjs ENDPOINT TABLE
//
// Runs a fixed scenario (table with a GSI, DocumentClient writes and reads,
// paging, conditions, batches, transactions, errors) and prints one JSON
// object of what the SDK returned, for tests/server/test_sdks.py to check.
// Errors are reported by what the SDK made of them: name, HTTP status,
// message and the members it parsed.

import {
  DynamoDBClient, CreateTableCommand, DescribeTableCommand, DeleteTableCommand,
  GetItemCommand, QueryCommand as RawQueryCommand, waitUntilTableExists, paginateScan,
} from "@aws-sdk/client-dynamodb";
import {
  DynamoDBDocumentClient, PutCommand, GetCommand, QueryCommand, UpdateCommand,
  BatchWriteCommand, BatchGetCommand, TransactWriteCommand, DeleteCommand,
} from "@aws-sdk/lib-dynamodb";

const [endpoint, table] = process.argv.slice(2);
const client = new DynamoDBClient({
  endpoint, region: "us-east-1", maxAttempts: 1,
  credentials: { accessKeyId: "AKIDSHOALJS", secretAccessKey: "secret" },
});
const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
const out = {};

async function failure(promise) {
  try {
    await promise;
    return null;
  } catch (err) {
    return {
      name: err.name, status: err.$metadata?.httpStatusCode, message: err.message,
      item: err.Item ?? null,
      reasons: err.CancellationReasons?.map((r) => r.Code) ?? null,
    };
  }
}

const event = (user, ts, extra = {}) => ({
  user_id: user, ts, event_type: "play", content_id: "c000114",
  device: { type: "tv", os: "webos", app_version: "5.29.9" },
  position_s: 1687.183, tags: new Set(["music", "anime"]), ...extra,
});

await client.send(new CreateTableCommand({
  TableName: table, BillingMode: "PAY_PER_REQUEST",
  AttributeDefinitions: [
    { AttributeName: "user_id", AttributeType: "S" }, { AttributeName: "ts", AttributeType: "N" },
    { AttributeName: "content_id", AttributeType: "S" },
  ],
  KeySchema: [{ AttributeName: "user_id", KeyType: "HASH" }, { AttributeName: "ts", KeyType: "RANGE" }],
  GlobalSecondaryIndexes: [{
    IndexName: "by_content",
    KeySchema: [{ AttributeName: "content_id", KeyType: "HASH" }, { AttributeName: "ts", KeyType: "RANGE" }],
    Projection: { ProjectionType: "KEYS_ONLY" },
  }],
}));
await waitUntilTableExists({ client, maxWaitTime: 30, minDelay: 1 }, { TableName: table });
const described = (await client.send(new DescribeTableCommand({ TableName: table }))).Table;
out.describe = {
  status: described.TableStatus, arn: described.TableArn,
  index: described.GlobalSecondaryIndexes?.[0]?.IndexName,
};

for (let i = 0; i < 5; i++) {
  await doc.send(new PutCommand({ TableName: table, Item: event("u0001", 1700000000000 + i, { seq: i }) }));
}
out.get = (await doc.send(new GetCommand({ TableName: table, Key: { user_id: "u0001", ts: 1700000000002 } }))).Item;
out.get.tags = [...out.get.tags].sort();

// The latest two, then the page after them.
const first = await doc.send(new QueryCommand({
  TableName: table, KeyConditionExpression: "user_id = :u", ExpressionAttributeValues: { ":u": "u0001" },
  ScanIndexForward: false, Limit: 2,
}));
const second = await doc.send(new QueryCommand({
  TableName: table, KeyConditionExpression: "user_id = :u", ExpressionAttributeValues: { ":u": "u0001" },
  ScanIndexForward: false, Limit: 2, ExclusiveStartKey: first.LastEvaluatedKey,
}));
out.pages = {
  first: first.Items.map((item) => item.ts), lastKey: first.LastEvaluatedKey,
  second: second.Items.map((item) => item.ts),
};

out.update = (await doc.send(new UpdateCommand({
  TableName: table, Key: { user_id: "u0001", ts: 1700000000000 },
  UpdateExpression: "ADD watch_count :one SET position_s = :p REMOVE tags",
  ConditionExpression: "position_s < :p",
  ExpressionAttributeValues: { ":one": 1, ":p": 1800.5 }, ReturnValues: "UPDATED_NEW",
}))).Attributes;

out.conditionFailed = await failure(doc.send(new PutCommand({
  TableName: table, Item: event("u0001", 1700000000001),
  ConditionExpression: "attribute_not_exists(user_id)", ReturnValuesOnConditionCheckFailure: "ALL_OLD",
})));
if (out.conditionFailed?.item) {
  out.conditionFailed.item = { seq: out.conditionFailed.item.seq?.N };
}

const batch = [];
for (let i = 0; i < 25; i++) batch.push({ PutRequest: { Item: event(`u${String(100 + i).padStart(4, "0")}`, 1700000001000) } });
out.batchWrite = (await doc.send(new BatchWriteCommand({ RequestItems: { [table]: batch } }))).UnprocessedItems;
const got = await doc.send(new BatchGetCommand({
  RequestItems: { [table]: { Keys: [{ user_id: "u0100", ts: 1700000001000 }, { user_id: "u0124", ts: 1700000001000 }, { user_id: "nobody", ts: 1 }] } },
}));
out.batchGet = got.Responses[table].map((item) => item.user_id).sort();

out.transaction = await failure(doc.send(new TransactWriteCommand({
  TransactItems: [
    { Put: { TableName: table, Item: event("u0200", 1700000002000) } },
    { ConditionCheck: { TableName: table, Key: { user_id: "u0001", ts: 1700000000003 }, ConditionExpression: "attribute_not_exists(ts)" } },
  ],
})));
out.afterTransaction = (await doc.send(new GetCommand({ TableName: table, Key: { user_id: "u0200", ts: 1700000002000 } }))).Item ?? null;

let scanned = 0;
let pages = 0;
for await (const page of paginateScan({ client, pageSize: 7 }, { TableName: table })) {
  scanned += page.Count;
  pages += 1;
}
out.scan = { scanned, pages };

const byContent = await client.send(new RawQueryCommand({
  TableName: table, IndexName: "by_content", KeyConditionExpression: "content_id = :c",
  ExpressionAttributeValues: { ":c": { S: "c000114" } }, Select: "COUNT",
}));
out.indexCount = byContent.Count;

await doc.send(new DeleteCommand({ TableName: table, Key: { user_id: "u0001", ts: 1700000000004 } }));
out.deleted = (await doc.send(new GetCommand({ TableName: table, Key: { user_id: "u0001", ts: 1700000000004 } }))).Item ?? null;

out.missingTable = await failure(client.send(new GetItemCommand({ TableName: `${table}_missing`, Key: { user_id: { S: "x" }, ts: { N: "1" } } })));
out.badKeyCondition = await failure(doc.send(new QueryCommand({
  TableName: table, KeyConditionExpression: "ts = :t", ExpressionAttributeValues: { ":t": 1 },
})));
out.badItem = await failure(client.send(new GetItemCommand({ TableName: table, Key: { user_id: { S: "x" } } })));

await client.send(new DeleteTableCommand({ TableName: table }));
console.log(JSON.stringify(out));
