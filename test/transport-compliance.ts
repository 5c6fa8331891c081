import should from "should";
import tls from "node:tls";
import { Identity, Sighting, Transport, verifyPeerCertificate } from "../lib";
import { waitFor } from "./helpers/events";

/**
 * What the shared suite needs to exercise a transport: the transport as run by an observing device, and
 * a subject device that can appear and leave.
 */
export interface ComplianceSetup {
  observer: Transport;
  observerIdentity: Identity;
  subjectId: string;
  /** Makes the subject discoverable: its wire listener up and, where the transport needs one, its own transport. */
  startSubject(): Promise<void>;
  /** A clean stop of the subject. */
  stopSubject(): Promise<void>;
  foundWithinMs: number;
  lostWithinMs: number;
  dispose(): Promise<void>;
}

/** One suite every Transport passes (mdns, static, ble, tor and the test-only memory transport). */
export function transportCompliance(name: string, setup: () => Promise<ComplianceSetup>): void {
  describe(`Transport compliance: ${name}`, function () {
    let env: ComplianceSetup;
    const sightings: Sighting[] = [];

    beforeEach(async () => {
      sightings.length = 0;
      env = await setup();
      env.observer.on("found", (sighting) => sightings.push(sighting));
    });
    afterEach(async () => {
      await env.observer.stop();
      await env.dispose();
    });

    const found = (): Promise<[Sighting]> =>
      waitFor<[Sighting]>(env.observer, "found", (s) => s.id === env.subjectId, env.foundWithinMs, `found(${env.subjectId.slice(0, 8)})`);
    const lost = (): Promise<[string]> => waitFor<[string]>(env.observer, "lost", (id) => id === env.subjectId, env.lostWithinMs, "lost");

    it("has a lowercase name, a rank and says whether it carries IP", () => {
      should(env.observer.name).match(/^[a-z0-9-]+$/);
      should(env.observer.rank).be.a.Number();
      should(env.observer.carriesIp).be.a.Boolean();
    });

    it("finds a device that comes into range, with its id and an address, and never itself", async () => {
      const seen = found();
      await env.observer.start();
      await env.startSubject();
      const [sighting] = await seen;
      should(sighting.address).be.a.String().and.not.be.empty();
      should(sightings.map((s) => s.id)).not.containEql(env.observerIdentity.deviceId);
    });

    it("connect() reaches the found device's wire listener, which proves the id", async () => {
      const seen = found();
      await env.observer.start();
      await env.startSubject();
      const [sighting] = await seen;
      const socket = tls.connect({
        socket: env.observer.connect(sighting.address),
        secureContext: env.observerIdentity.tlsContext(),
        ALPNProtocols: ["h2"],
        rejectUnauthorized: false,
        checkServerIdentity: () => undefined,
      });
      try {
        await Promise.race([
          waitFor(socket, "secureConnect", () => true, 5_000, "a TLS handshake through connect()"),
          waitFor<[Error]>(socket, "error", () => true, 5_000).then(([err]) => Promise.reject(err)),
        ]);
        should(verifyPeerCertificate(socket.getPeerX509Certificate())).equal(env.subjectId);
      } finally {
        socket.destroy();
      }
    });

    it("reports a device that leaves as lost, and finds it again when it comes back", async () => {
      await env.observer.start();
      const first = found();
      await env.startSubject();
      await first;
      const gone = lost();
      await env.stopSubject();
      await gone;
      const again = found();
      await env.startSubject();
      await again;
    });

    it("starts and stops idempotently, and emits nothing after stop", async () => {
      await env.observer.stop(); // before start
      const seen = found();
      await env.observer.start();
      await env.observer.start();
      await env.startSubject();
      await seen;
      await env.observer.stop();
      await env.observer.stop();
      let events = 0;
      const count = (): void => void events++;
      env.observer.on("found", count).on("lost", count);
      await env.stopSubject();
      await new Promise((resolve) => setTimeout(resolve, env.lostWithinMs));
      env.observer.off("found", count).off("lost", count);
      should(events).equal(0);
    });
  });
}
