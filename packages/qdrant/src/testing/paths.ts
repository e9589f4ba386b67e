/**
 * Hostile spellings of the tenant field as a Qdrant payload path (Qdrant's JSON-path grammar):
 * plain and quoted first keys, each followed by index, wildcard, plain, quoted and odd steps.
 * Every one of them starts at the field `tenant_id` on a real Qdrant.
 */
export const TENANT_PATHS: readonly string[] = (() => {
  const heads = ['tenant_id', '"tenant_id"'];
  const tails = [
    '',
    '[]',
    '[0]',
    '[18446744073709551615]',
    '.x',
    '."x"',
    '[].a',
    '."a.b"[]',
    '[0][1].b-c',
    '.""',
    '."\u00e9"',
  ];
  return heads.flatMap((h) => tails.map((t) => h + t));
})();
