import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { ExecutionContext } from 'ava';
import { listenTcp } from './net';

/** A throwaway self-signed certificate for `name`, made by the openssl CLI. */
export function selfSignedCert(name: string): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'rxredirect-tls-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        `/CN=${name}`,
        '-addext',
        `subjectAltName=DNS:${name}`,
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    return { key: readFileSync(key), cert: readFileSync(cert) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The ClientHello record a real node:tls client sends for `servername`, read by a raw
 * listener up to the end of the TLS records that carry it.
 */
export async function captureClientHello(t: ExecutionContext, servername: string): Promise<Buffer> {
  let resolve: (b: Buffer) => void = () => {};
  const got = new Promise<Buffer>((r) => {
    resolve = r;
  });
  const raw = await listenTcp(t, (s: Socket) => {
    let buf = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      // One handshake record (type 0x16) holding the whole ClientHello message.
      if (buf.length < 9 || buf.length < 5 + buf.readUInt16BE(3)) return;
      const recordEnd = 5 + buf.readUInt16BE(3);
      if (recordEnd >= 9 && 4 + buf.readUIntBE(6, 3) <= recordEnd - 5) resolve(buf.subarray(0, recordEnd));
    });
  });
  const client = tlsConnect({ port: raw.port, host: '127.0.0.1', servername });
  client.on('error', () => {});
  const hello = await got;
  client.destroy();
  await once(client, 'close');
  return hello;
}
