/** Thrown for input the Qdrant double does not implement or that Qdrant would reject; answered with 400. */
export class DoubleUnsupported extends Error {
  override readonly name = 'DoubleUnsupported';
}
