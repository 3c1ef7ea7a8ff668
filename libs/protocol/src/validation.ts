import { plainToInstance, type ClassConstructor } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
import { ErrorCode, ProtocolError } from './errors.js';

/** Flattens class-validator errors into one readable line. */
export function describeValidationErrors(
  errors: ValidationError[],
  prefix = '',
): string {
  const parts: string[] = [];
  for (const e of errors) {
    const path = prefix ? `${prefix}.${e.property}` : e.property;
    if (e.constraints) parts.push(...Object.values(e.constraints));
    if (e.children?.length)
      parts.push(describeValidationErrors(e.children, path));
  }
  return parts.join('; ');
}

/**
 * Validates a plain object against a DTO class and returns the typed instance.
 * Unknown properties are stripped (whitelist); a failure is a 400 ProtocolError
 * naming every problem, so callers never see half-valid input.
 */
export function validateDto<T extends object>(
  cls: ClassConstructor<T>,
  plain: unknown,
): T {
  if (typeof plain !== 'object' || plain === null || Array.isArray(plain)) {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      'Expected a JSON object.',
    );
  }
  const instance = plainToInstance(cls, plain);
  const errors = validateSync(instance, {
    whitelist: true,
    forbidUnknownValues: true,
  });
  if (errors.length) {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      describeValidationErrors(errors),
    );
  }
  return instance;
}

/**
 * Validates environment variables against a config class at start-up.
 * Throws an Error whose message names each bad variable, so a
 * misconfigured app stops with a message instead of misbehaving later.
 */
export function validateEnv<T extends object>(
  cls: ClassConstructor<T>,
  env: Record<string, string | undefined>,
): T {
  const instance = plainToInstance(cls, env, {
    enableImplicitConversion: false,
  });
  const errors = validateSync(instance, { whitelist: true });
  if (errors.length) {
    const lines = errors.map(
      (e) =>
        `  ${e.property}=${JSON.stringify(env[e.property])}: ${Object.values(e.constraints ?? {}).join('; ')}`,
    );
    throw new Error(`Invalid configuration:\n${lines.join('\n')}`);
  }
  return instance;
}
