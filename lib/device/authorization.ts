import type { Acl } from "../acl/acl";
import type { Authorizer, TopicAuthorizer, Verb } from "../protocol/wire";

/**
 * Who decides what a peer may do: the device's ACL, unless a flow's authorize function replaced it. A
 * replaced authorizer is a black box, so then everyone may try and each request is decided by it.
 */
export class Authorization {
  private replaced?: Authorizer;

  constructor(private readonly acl: Acl, replacement?: Authorizer) {
    this.replaced = replacement;
  }

  /** What the wire asks for every request in and out. */
  readonly authorize: Authorizer = (peerId, verb, resource) => (this.replaced ? this.replaced(peerId, verb, resource) : this.acl.authorize(peerId, verb, resource));

  /** authorize() for a message or stream topic, which the ACL decides without joining kind and topic. */
  readonly authorizeTopic: TopicAuthorizer = (peerId, verb, kind, topic) => (this.replaced ? this.replaced(peerId, verb, `${kind}/${topic}`) : this.acl.authorizeTopic(peerId, verb, kind, topic));

  /** Whether `peerId` may try anything under `prefix` at all (strangers are refused before their bodies are read). */
  permits(peerId: string, verb?: Verb, prefix?: string): boolean {
    return !!this.replaced || this.acl.permitsSome(peerId, verb, prefix);
  }

  /** undefined gives the decisions back to the ACL. */
  replace(authorize: Authorizer | undefined): void {
    this.replaced = authorize;
  }
}
