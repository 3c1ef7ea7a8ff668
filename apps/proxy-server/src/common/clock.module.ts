import { type DynamicModule, Module } from '@nestjs/common';
import { CLOCK, type Clock, systemClock } from './clock.js';

/** Provides {@link CLOCK} everywhere: the system clock, or a test's. */
@Module({})
export class ClockModule {
  static register(clock: Clock = systemClock): DynamicModule {
    return {
      module: ClockModule,
      global: true,
      providers: [{ provide: CLOCK, useValue: clock }],
      exports: [CLOCK],
    };
  }
}
