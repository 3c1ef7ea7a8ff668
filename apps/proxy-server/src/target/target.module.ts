import { Module } from '@nestjs/common';
import { TargetService } from './target.service.js';

/** Forwarding complete requests to their targets over one keep-alive undici pool. */
@Module({
  providers: [TargetService],
  exports: [TargetService],
})
export class TargetModule {}
