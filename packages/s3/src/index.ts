export {
  type DeleteManyResult,
  type GetResult,
  type HeadResult,
  type ListOptions,
  type ListResult,
  type ObjectInfo,
  type PresignOptions,
  type PresignPutOptions,
  type PutBody,
  type PutOptions,
  type ScopedS3,
  type ScopedS3Options,
  scopedS3,
  TenantS3,
  type UploadOptions,
} from './client.ts';
export {
  type CredentialVendor,
  type StsCredentialOptions,
  stsCredentials,
  type TenantCredentials,
  tenantUserCredentials,
  type VendedCredentialsOption,
} from './credentials.ts';
export { checkBucketPolicy, comparePolicies, type PolicyFinding, type PolicyFindingCode } from './doctor.ts';
export {
  type DeleteAllResult,
  type ExportedObject,
  type ExportResult,
  S3TenantData,
  type TenantCount,
  TenantData,
} from './dsar.ts';
export { S3_ERROR_CODES, S3_ERROR_STATUS, type S3ErrorCode, s3Error } from './errors.ts';
export { addPolicyStatements, fenceTenant, removePolicyStatements, unfenceTenant } from './fence.ts';
export { checkKey, type KeyProblem, keyProblem, MAX_KEY_BYTES } from './keys.ts';
export {
  checkPlacement,
  defaultPrefix,
  type Placement,
  type PlacementResolver,
  type S3Placement,
  sharedBucket,
  type TenantRef,
  tieredPlacement,
} from './placement.ts';
export {
  type BucketGrant,
  FENCE_ACTIONS,
  FENCE_SID_PREFIX,
  type FenceOptions,
  fenceSids,
  fenceStatements,
  isFenceStatement,
  type PolicyDocument,
  type PolicyPlacement,
  type PolicyStatement,
  TENANT_OBJECT_ACTIONS,
  type TenantPolicyOptions,
  tenantBucketPolicy,
  tenantPolicy,
} from './policy.ts';
