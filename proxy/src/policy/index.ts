/**
 * The policy model as the injector uses it (`@remora/proxy/policy`): the same parser, compiler
 * and version the proxies run, so a document the control plane accepts is one every proxy of
 * this version accepts. No data-path code is exported here.
 */
export { PolicyInvalidError } from '../errors.js';
export { compilePolicy } from './compile.js';
export { parsePolicyDocument, policyVersion } from './document.js';
export type { CompiledPolicy, PolicyDocument, Policy, PolicySource, WorkloadRef } from './types.js';
