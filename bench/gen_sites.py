#!/usr/bin/env python3
# Deployment files for scale measurements. `gen_sites.py NODES UNITS` mirrors
# deployment::generate::large_system (three zones); `gen_sites.py NODES UNITS sites` gives every 50
# nodes their own server and agent zone (the shape where zones grow with the system).
import sys
# mirrors deployment::generate::large_system(nodes, units); with sites>0, every 50 nodes get their own server and agent zone
nodes=int(sys.argv[1]); units=int(sys.argv[2]); sites=len(sys.argv)>3 and sys.argv[3]=="sites"
pk=[("agent-server","port"),("alarm-server","port"),("call-dispatcher","port"),("chat-server","port"),("data-collector","port"),("directory-server","port"),("file-replication-server","port"),("quality-monitoring-server","port")]
o=['name = "generated"\n']
def addr(i,base):
    n=base+i; return "10.%d.%d.%d"%((n>>16)&255,(n>>8)&255,n&255)
if not sites:
    o.append('[zones.dc]\ncidrs = ["10.0.0.0/8"]\nroles = ["servers"]\n\n[zones.agents]\ncidrs = ["172.16.0.0/12"]\nroles = ["clients"]\n\n')
o.append('[zones.admins]\ncidrs = ["192.168.0.0/24"]\nroles = ["admins"]\n\n')
if sites:
    for s in range((nodes+49)//50):
        o.append('[zones.site%d]\ncidrs = ["10.%d.%d.0/24"]\nroles = ["servers"]\n[zones.agents%d]\ncidrs = ["172.%d.%d.0/24"]\nroles = ["clients"]\n'%(s,16+(s>>8),s&255,s,16+(s>>8),s&255))
for i in range(nodes):
    if sites:
        s=i//50; o.append('[nodes.N%d]\naddress = "10.%d.%d.%d"\nzone = "site%d"\n'%(i,16+(s>>8),s&255,1+i%50,s))
    else:
        o.append('[nodes.N%d]\naddress = "%s"\nzone = "dc"\n'%(i,addr(i,1<<20)))
for u in range(units):
    p,port=pk[u%len(pk)]; a=u%nodes; b=(u+1)%nodes
    inst='"N%d"'%a if a==b else '"N%d", "N%d"'%(a,b)
    if sites:
        s=a//50; ad="10.%d.%d.%d"%(16+(s>>8),s&255,100+(u%100))
    else: ad=addr(u,2<<20)
    o.append('[units.U%d]\naddress = "%s"\npackages = ["%s"]\ninstances = [%s]\n[units.U%d.variables]\n"%s.%s" = %d\n'%(u,ad,p,inst,u,p,port,1024+u%40000))
sys.stdout.write("".join(o))
