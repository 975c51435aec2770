// The emulator's SQL Server door driven by tedious, the TDS client of
// Node.js (TLS through Node's OpenSSL): in clear, in TLS negotiated in
// PRELOGIN, and in TDS 8.0 ("strict", TLS from the first byte), each with
// a catalogue query, the import procedure called by name, SQL Server's
// 1801 for a second import and 18456 for a wrong password. Run by
// tests/other_clients.rs with the emulator's environment, one full backup at
// `db.bak`, and the CA of the door's certificate in `TDS_CA_FILE`. Exits
// non-zero, naming the check, on the first mismatch.

const fs = require("fs");
const { Connection, Request, TYPES } = require("tedious");

const env = process.env;
const ca = fs.readFileSync(env.TDS_CA_FILE);

function connect(encrypt, password) {
  return new Promise((resolve, reject) => {
    const connection = new Connection({
      // The certificate names localhost; tedious checks the name.
      server: "localhost",
      authentication: {
        type: "default",
        options: { userName: env.SQL_USER, password },
      },
      options: {
        port: Number(env.SQL_PORT),
        encrypt,
        trustServerCertificate: false,
        cryptoCredentialsDetails: { ca },
        connectTimeout: 10000,
        requestTimeout: 30000,
      },
    });
    connection.on("connect", (err) => (err ? reject(err) : resolve(connection)));
    connection.connect();
  });
}

function query(connection, text) {
  return new Promise((resolve, reject) => {
    const rows = [];
    const request = new Request(text, (err) => (err ? reject(err) : resolve(rows)));
    request.on("row", (columns) => rows.push(columns.map((c) => c.value)));
    connection.execSql(request);
  });
}

function importDatabase(connection, name) {
  return new Promise((resolve, reject) => {
    const request = new Request("[msdb].[stackit].[import_database]", (err) =>
      err ? reject(err) : resolve()
    );
    const uri = `s3://${env.S3_ENDPOINT.split("://")[1]}/${env.S3_BUCKET}/db.bak`;
    request.addParameter("database_name", TYPES.NVarChar, name);
    request.addParameter("s3_url", TYPES.NVarChar, uri);
    request.addParameter("s3_access_key_id", TYPES.NVarChar, env.S3_ACCESS_KEY);
    request.addParameter("s3_secret_key_id", TYPES.NVarChar, env.S3_SECRET_KEY);
    connection.callProcedure(request);
  });
}

function check(ok, what) {
  if (!ok) {
    throw new Error(`check failed: ${what}`);
  }
}

async function stateOf(connection, name) {
  const rows = await query(
    connection,
    `SELECT name, state_desc FROM sys.databases WHERE name = N'${name}'`
  );
  return rows.length ? rows[0][1] : null;
}

async function session(encrypt) {
  const connection = await connect(encrypt, env.SQL_PASSWORD);
  const [[, login]] = await query(
    connection,
    "SELECT SERVERPROPERTY('ProductMajorVersion'), SUSER_SNAME()"
  );
  check(login === env.SQL_USER, `SUSER_SNAME() with encrypt ${encrypt}: ${login}`);
  const name = `via_tedious_${String(encrypt)}`;
  await importDatabase(connection, name);
  const deadline = Date.now() + 30000;
  while ((await stateOf(connection, name)) !== "ONLINE") {
    check(Date.now() < deadline, `${name} online within 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const again = await importDatabase(connection, name).then(
    () => null,
    (err) => err.number
  );
  check(again === 1801, `a second import of ${name}: ${again}`);
  const [[one]] = await query(connection, "SELECT 1");
  check(one === 1, "usable after an error");
  connection.close();
}

async function main() {
  for (const encrypt of [false, true, "strict"]) {
    await session(encrypt);
  }
  const refused = await connect(true, "not-the-password").then(
    () => null,
    (err) => err.message
  );
  check(/Login failed/.test(refused || ""), `a wrong password: ${refused}`);
  console.log("tds: tedious ok");
}

main().catch((err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
