/** The isolation corpus on the shared tier: one bucket, a prefix per tenant. */
import { scopedSuite } from './scoped-suite.ts';
import { s3Fixture } from './test-support.ts';

scopedSuite('scoped', () => s3Fixture('scoped'));
