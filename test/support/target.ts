export {
  makeCertificate,
  deterministicBytes,
  sha256,
  sha256Of,
  startTarget,
} from '../../scripts/target.mjs';
export type { SeenRequest, Target } from '../../scripts/target.mjs';
