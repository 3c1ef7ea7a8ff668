import { Module } from '@nestjs/common';
import { TargetGuard } from './target-guard.js';
import { TargetService } from './target.service.js';

/**
 * Forwarding complete requests to their targets over one keep-alive undici
 * pool, and the guard that decides which targets may be connected to (for
 * tunnels too).
 */
@Module({
  providers: [TargetService, TargetGuard],
  exports: [TargetService, TargetGuard],
})
export class TargetModule {}
