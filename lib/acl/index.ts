export { Acl, DEFAULT_RULES, type AclEvents, type AclOptions } from "./acl";
export { AclStore } from "./acl-store";
export { AclError, resourceMatches, ruleProblems, validateRules, VERBS, type Rule } from "./rules";
export { GroupError, groupDocId, groupPrincipal, isGroupName, parseGroupReference, REVOKED_GROUP, signGroup, verifyGroup, type GroupDoc } from "./signed-group";
export { advertisedHost, formatPairingCode, parsePairingCode, shortAuthenticationString, type PairingCode } from "./pairing";
export { PairedPeers, type PairedPeer } from "./paired-peers";
