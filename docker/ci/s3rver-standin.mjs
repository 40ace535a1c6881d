// `minio server DIR [--console-address ...]` and `mc alias set|mb` for CI, answered with s3rver
// (see s3rver.Dockerfile: no signature checks; not MinIO).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';

const [tool, ...args] = process.argv.slice(2);
const aliasFile = path.join(os.homedir(), '.mc-standin.json');

if (tool === 'minio' && args[0] === 'server') {
  const directory = args[1] ?? '/data';
  fs.mkdirSync(directory, { recursive: true });
  // vhostBuckets off: s3rver would take the Host name `minio` for a bucket (CNAME style); clients here use path style.
  const server = new S3rver({ address: '0.0.0.0', port: 9000, directory, silent: false, vhostBuckets: false });
  await server.run();
  console.log(`s3rver (stand-in for MinIO, no signature checks) on :9000, data in ${directory}`);
  const stop = () => server.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else if (tool === 'mc' && args[0] === 'alias' && args[1] === 'set') {
  const [, , name, url] = args;
  await fetch(url); // throws (exit 1) until the server answers
  const aliases = fs.existsSync(aliasFile) ? JSON.parse(fs.readFileSync(aliasFile, 'utf8')) : {};
  fs.writeFileSync(aliasFile, JSON.stringify({ ...aliases, [name]: url }));
} else if (tool === 'mc' && args[0] === 'mb') {
  const target = args.filter((a) => !a.startsWith('--')).at(-1);
  const [name, bucket] = target.split('/');
  const url = JSON.parse(fs.readFileSync(aliasFile, 'utf8'))[name];
  const res = await fetch(`${url}/${bucket}`, { method: 'PUT' }); // unsigned: s3rver checks no signatures
  const body = await res.text();
  if (!res.ok && !(args.includes('--ignore-existing') && /BucketAlreadyOwnedByYou|BucketAlreadyExists/.test(body))) {
    console.error(`mc mb ${target}: HTTP ${res.status} ${body}`);
    process.exit(1);
  }
  console.log(`Bucket created successfully \`${target}\`.`);
} else {
  console.error(`stand-in does not implement: ${tool} ${args.join(' ')}`);
  process.exit(2);
}
