/** The one function of the qrcode package used here (its @types package is not needed for it). */
declare module "qrcode" {
  export function toString(text: string, options: { type: "svg"; margin?: number; errorCorrectionLevel?: "L" | "M" | "Q" | "H" }): Promise<string>;
}
