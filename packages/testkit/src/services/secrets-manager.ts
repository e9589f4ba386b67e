import { SecretsManagerProtocolDouble } from '../doubles/secrets-manager.ts';
import { containerRuntimeAvailable, type ResolvedService } from './runtime.ts';

export interface ResolvedSecretsManager extends ResolvedService {
  /** Endpoint URL to give `SecretsManagerClient({ endpoint })`. */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/**
 * Secrets Manager for tests: `SECRETS_MANAGER_ENDPOINT` if set (credentials from
 * `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, region from `AWS_REGION`, default `test`/`test`
 * and `us-east-1`), else LocalStack through testcontainers when a container runtime answers, else
 * the testkit's {@link SecretsManagerProtocolDouble} on loopback (a strict protocol double, not AWS).
 */
export async function resolveSecretsManager(): Promise<ResolvedSecretsManager> {
  const region = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1';
  const env = process.env.SECRETS_MANAGER_ENDPOINT;
  if (env) {
    return {
      source: 'env',
      endpoint: env,
      region,
      accessKeyId: process.env.AWS_ACCESS_KEY_ID || 'test',
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || 'test',
      describe: `Secrets Manager from SECRETS_MANAGER_ENDPOINT (${env}, region ${region})`,
      stop: async () => {},
    };
  }
  if (await containerRuntimeAvailable()) {
    const { LocalstackContainer } = await import('@testcontainers/localstack');
    const c = await new LocalstackContainer('localstack/localstack:4')
      .withEnvironment({ SERVICES: 'secretsmanager' })
      .start();
    return {
      source: 'testcontainers',
      endpoint: c.getConnectionUri(),
      region,
      accessKeyId: 'test',
      secretAccessKey: 'test',
      describe: `Secrets Manager: LocalStack 4 (testcontainers) at ${c.getConnectionUri()}`,
      stop: async () => {
        await c.stop();
      },
    };
  }
  const double = new SecretsManagerProtocolDouble({
    region,
    credentials: [{ accessKeyId: 'test', secretAccessKey: 'test' }],
  });
  const endpoint = await double.start();
  return {
    source: 'double',
    endpoint,
    region,
    accessKeyId: 'test',
    secretAccessKey: 'test',
    describe: `Secrets Manager: SecretsManagerProtocolDouble (testkit protocol double, not AWS) at ${endpoint}; no SECRETS_MANAGER_ENDPOINT and no container runtime`,
    stop: () => double.stop(),
  };
}
