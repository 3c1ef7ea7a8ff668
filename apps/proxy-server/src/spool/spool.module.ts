import { Module } from '@nestjs/common';
import { SpoolService } from './spool.service.js';

/** Spool files for request bodies larger than SPOOL_THRESHOLD_BYTES. */
@Module({
  providers: [SpoolService],
  exports: [SpoolService],
})
export class SpoolModule {}
