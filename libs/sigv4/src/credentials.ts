import {
  LOCAL_DEV_ACCESS_KEY_ID,
  LOCAL_DEV_SECRET_ACCESS_KEY,
} from '@app/protocol';

/**
 * Parses a credentials variable, `AKID:SECRET,AKID2:SECRET2`, into secret
 * access keys by access key id; unset or empty means the local development
 * pair. Checked by hand rather than by class-validator because validateEnv
 * quotes the bad value in its message, and this one holds secrets: errors
 * name the variable and the entry, never its content.
 */
export function parseCredentialList(
  raw: string | undefined,
  variable: string,
): ReadonlyMap<string, string> {
  if (raw === undefined || raw.trim() === '') {
    return new Map([[LOCAL_DEV_ACCESS_KEY_ID, LOCAL_DEV_SECRET_ACCESS_KEY]]);
  }
  const credentials = new Map<string, string>();
  raw.split(',').forEach((entry, index) => {
    const pair = entry.trim();
    const colon = pair.indexOf(':');
    const id = colon === -1 ? '' : pair.slice(0, colon).trim();
    const secret = colon === -1 ? '' : pair.slice(colon + 1).trim();
    if (!/^[A-Za-z0-9]+$/.test(id) || secret === '') {
      throw new Error(
        `Invalid configuration:\n  ${variable}: entry ${index + 1} must be ACCESS_KEY_ID:SECRET_ACCESS_KEY ` +
          '(access key id of letters and digits, non-empty secret; entries separated by commas; value not shown)',
      );
    }
    credentials.set(id, secret);
  });
  return credentials;
}
