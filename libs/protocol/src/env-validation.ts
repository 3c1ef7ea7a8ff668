import { Transform } from 'class-transformer';
import {
  IsIn,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  ValidateBy,
} from 'class-validator';
import { LOG_LEVELS } from './log-level.js';

/*
 * Property decorators for the classes the apps hand to `validateEnv`. Their
 * messages do not repeat the variable's name: `validateEnv` already starts
 * each line with `NAME="value": `, so a bad value reads
 * `CHUNK_SIZE="1e6": must be a whole number of bytes from 1024 to 10485760`.
 */

/** What a `WholeNumber` counts, for its message; none for a plain count. */
export type WholeNumberUnit = 'bytes' | 'milliseconds' | 'port';

/** Applies several property decorators as one. */
function all(...decorators: PropertyDecorator[]): PropertyDecorator {
  return (target, key) => {
    for (const decorate of decorators) decorate(target, key);
  };
}

/**
 * A whole number between `min` and `max`, given as a string. Parsed strictly
 * (no `1e3`, `0x10`, fractions or signs) so that a typo fails instead of
 * becoming another number (`Number('')` would be 0, `Number('1e3')` 1000);
 * an empty value counts as unset. One message per variable, not one per
 * failed rule.
 */
export function WholeNumber(
  min: number,
  max: number,
  unit?: WholeNumberUnit,
): PropertyDecorator {
  const what =
    unit === 'port'
      ? 'a port number (0 = any free port)'
      : unit === undefined
        ? 'a whole number'
        : `a whole number of ${unit}`;
  const message =
    max === Number.MAX_SAFE_INTEGER
      ? `must be ${what}, at least ${min}`
      : `must be ${what} from ${min} to ${max}`;
  return all(
    Transform(({ value }: { value: unknown }) => {
      if (value === undefined || value === '') return undefined;
      return typeof value === 'string' && /^\d+$/.test(value.trim())
        ? Number(value.trim())
        : Number.NaN;
    }),
    ValidateBy({
      name: 'wholeNumber',
      validator: {
        validate: (value: unknown) =>
          value === undefined ||
          (Number.isSafeInteger(value) &&
            (value as number) >= min &&
            (value as number) <= max),
        defaultMessage: () => message,
      },
    }),
  );
}

/** An empty string counts as unset, so that `NAME=` means the default. */
export const EmptyIsUnset = (): PropertyDecorator =>
  Transform(({ value }: { value: unknown }) =>
    value === '' ? undefined : value,
  );

/** Optional LOG_LEVEL: one of LOG_LEVELS, or `info` (an alias of `log`). */
export function LogLevel(): PropertyDecorator {
  const accepted = [...LOG_LEVELS, 'info'];
  return all(
    IsOptional(),
    IsIn(accepted, { message: `must be one of ${accepted.join(', ')}` }),
  );
}

/** Optional listen host: a host name or IP address, no scheme, port or path. */
export function HostName(): PropertyDecorator {
  return all(
    IsOptional(),
    IsString(),
    Matches(/^[^\s/]+$/, { message: 'must be a host name or IP address' }),
  );
}

/** Optional AWS region, such as us-east-1. */
export function AwsRegion(): PropertyDecorator {
  return all(
    IsOptional(),
    Matches(/^[a-z]{2}(-[a-z]+)+-\d+$/, {
      message: 'must be an AWS region such as us-east-1',
    }),
  );
}

/** Optional SigV4 service name, such as execute-api. */
export function SigV4Service(): PropertyDecorator {
  return all(
    IsOptional(),
    Matches(/^[A-Za-z0-9-]+$/, {
      message: 'must be a SigV4 service name such as execute-api',
    }),
  );
}

/** Optional absolute http(s) URL; `example` shows the user a good one. */
export function HttpUrl(example: string): PropertyDecorator {
  return all(
    IsOptional(),
    IsUrl(
      {
        require_tld: false,
        require_protocol: true,
        protocols: ['http', 'https'],
      },
      { message: `must be an http(s) URL such as ${example}` },
    ),
  );
}

/**
 * Optional on/off switch: `true` or `false` (any case), read as a boolean;
 * an empty value counts as unset. Anything else (`yes`, `1`, a typo) fails
 * rather than silently meaning one or the other.
 */
export function TrueOrFalse(): PropertyDecorator {
  return all(
    Transform(({ value }: { value: unknown }) => {
      if (value === undefined || value === '') return undefined;
      const v = typeof value === 'string' ? value.trim().toLowerCase() : '';
      return v === 'true' ? true : v === 'false' ? false : value;
    }),
    ValidateBy({
      name: 'trueOrFalse',
      validator: {
        validate: (value: unknown) =>
          value === undefined || typeof value === 'boolean',
        defaultMessage: () => 'must be true or false',
      },
    }),
  );
}
