/**
 * Can this app run a model? The manifest is checked against the bundle manifest's JSON Schema
 * (conversion/manifest.schema.json, compiled into this bundle by the build), and its resize
 * recipe against the recipes preprocess.js implements. A model that fails either is refused
 * with a message people can act on; it is never loaded and silently misread.
 */

import validateManifest from 'virtual:manifest-validator';

import { knowsResizeRecipe } from './preprocess.js';

export class UnusableModel extends Error {
  constructor(message) {
    super(message);
    this.name = 'UnusableModel';
  }
}

function describe(errors = []) {
  return errors.slice(0, 3).map((e) => `${e.instancePath.slice(1) || 'manifest'} ${e.message}`).join('; ');
}

/** Throws UnusableModel unless `manifest` is one this app can load and feed correctly. */
export function checkManifest(manifest) {
  if (!validateManifest(manifest)) {
    throw new UnusableModel(`The model's description is not one this app can read (${describe(validateManifest.errors)}). Reload the page to update BinBot.`);
  }
  const { resize } = manifest.input;
  if (!knowsResizeRecipe(resize)) {
    throw new UnusableModel(`Model ${manifest.version} prepares photos with "${resize.recipe}" version ${resize.version}, which this version of BinBot does not know. Reload the page to update BinBot.`);
  }
}

/**
 * A model entry stored by an older app (manifest version 1) in the current form: every such
 * model used recipe center-square-box-bilinear version 1, which version 1 wrote as prose.
 */
export function upgradeStoredManifest(manifest) {
  if (manifest.manifest_version !== undefined) return manifest;
  const { size = [224, 224], value_range: range = [0, 255] } = manifest.input.resize ?? {};
  return {
    manifest_version: 2,
    ...manifest,
    input: { ...manifest.input, resize: { recipe: 'center-square-box-bilinear', version: 1, size, value_range: range } },
  };
}
