import { ValidateBy } from 'class-validator';

const PORT_LIST = /^\s*\d{1,5}\s*(,\s*\d{1,5}\s*)*$/;

/** The ports of a comma-separated list such as `443, 8443`, deduplicated, in order. */
export function parsePortList(value: string): number[] {
  return [...new Set(value.split(',').map((part) => Number(part.trim())))];
}

/**
 * An environment variable holding a comma-separated list of TCP ports
 * (CONNECT_ALLOWED_PORTS). Strict, like `WholeNumber`: `443,` or `https`
 * stop the app instead of silently allowing less (or more) than meant.
 */
export function PortList(): PropertyDecorator {
  return ValidateBy({
    name: 'portList',
    validator: {
      validate: (value: unknown) =>
        value === undefined ||
        (typeof value === 'string' &&
          PORT_LIST.test(value) &&
          parsePortList(value).every((port) => port >= 1 && port <= 65535)),
      defaultMessage: () =>
        'must be a comma-separated list of ports from 1 to 65535, such as 443,8443',
    },
  });
}
