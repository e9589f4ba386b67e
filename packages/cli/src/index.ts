export { formatJson, formatJUnit, formatTable } from './check/output.ts';
export { type CheckReport, type CheckResult, type Group, type RunOptions, runCheck, type Status } from './check/run.ts';
export { writeKeyPair } from './check/tokens.ts';
export { type Io, main, program } from './cli.ts';
export {
  type CheckConfig,
  type CheckTenant,
  checkSectionSchema,
  configSchema,
  describeIssues,
  type EvidenceConfig,
  evidenceSectionSchema,
  loadConfig,
  parseConfig,
  type TenantscopeConfig,
} from './config.ts';
export { CLI_ERROR_CODES, type CliErrorCode, cliError, EXIT, exitCodeOf } from './errors.ts';
export { type EvidenceReport, runEvidence } from './evidence/run.ts';
